"""Loading trajectory files, with errors that name the file, the trajectory and the field."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from umi.format.turns import Trajectory


class TrajectoryFileError(Exception):
    """A trajectory file that cannot be used. ``str()`` is one line for the user."""

    def __init__(self, path: str | Path, message: str, index: int | None = None, field: str | None = None):
        self.path = str(path)
        self.index = index
        self.field = field
        where = self.path
        if index is not None:
            where += f": trajectory {index}"
        if field:
            where += f": {field}"
        super().__init__(f"{where}: {message}")


# Trajectory files spell a turn {"from", "value"}; name the fields as the file does.
_FILE_SPELLING = {"role": "from", "content": "value"}
_FILE_ROLES = "user, assistant, caller, observation, conclusion"


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    if len(loc) >= 3 and loc[0] == "conversations":
        loc = (*loc[:-1], _FILE_SPELLING.get(str(loc[-1]), loc[-1]))
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_trajectories(data: object, path: str | Path = "<data>") -> list[Trajectory]:
    if not isinstance(data, list):
        raise TrajectoryFileError(path, f"expected a JSON list of trajectories, got a JSON {type(data).__name__}")
    out: list[Trajectory] = []
    for index, item in enumerate(data):
        try:
            out.append(Trajectory.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = _field_path(first["loc"])
            message = first["msg"]
            if field.endswith(".from") and first["type"] == "literal_error":
                message = f"got {first['input']!r}; must be one of {_FILE_ROLES}"
            raise TrajectoryFileError(path, message, index=index, field=field or None) from None
    return out


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """Read a JSON list of trajectories. Raises :class:`TrajectoryFileError` on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrajectoryFileError(path, "no such file") from None
    except IsADirectoryError:
        raise TrajectoryFileError(path, "is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrajectoryFileError(path, f"cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrajectoryFileError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_trajectories(data, path)
