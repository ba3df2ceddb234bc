"""The shared role-service core (docs/role-services.md).

    settings.py        UMI_* settings (environment or flags)
    app.py             create_app(spec, settings): the FastAPI app of one role
    roles.py           RoleSpec: what differs between the roles (template, parser, sampling, path)
    generation.py      render -> fit -> generate -> parse; streaming; warm-up
    prompt_fit.py      token counting and the cut from the left, with the model's tokenizer
    swap.py            WeightsManager: the serving deployment, which swap strategy runs, rollback
    strategies/        one unit per swap strategy (blue/green, in place, LoRA, reuse) behind one interface
    deployment.py      engine + weights + tokenizer, leased by requests (drain)
    weights.py         weights references, path checks, fingerprints
    engine_factory.py  the configured engine kind for given weights
    admin.py           /admin/weights
    metrics.py         Prometheus metrics in a per-app registry
    errors.py          engine errors as umi.http_errors answers; error metrics
    entry.py           `umi serve ROLE` and `python -m services.ROLE`
    drain.py           DrainingServer: the SIGTERM order (/ready 503, delay, drain, engines stop)
"""

from umi.service.app import RoleService, create_app
from umi.service.entry import main, serve
from umi.service.roles import REFERENCE_SAMPLING, ResponseMeta, RoleSpec, SamplingDefaults
from umi.service.settings import ServiceSettings, load_settings

__all__ = [
    "REFERENCE_SAMPLING", "ResponseMeta", "RoleService", "RoleSpec", "SamplingDefaults", "ServiceSettings",
    "create_app", "load_settings", "main", "serve",
]
