"""Evaluation: the paper's per-step metrics against gold trajectories, and end-to-end chats.

gold.py         gold steps of a trajectory file (what each role is asked, what it should say)
predictions.py  the predictions file (one raw generation per step and role)
metrics.py      Plan ACC, Act. EM, Hallu., Arg. F1, R-L
score.py        predictions + gold -> metrics
steps.py        `umi eval steps`: requests to the role services (the paper's protocol, or teacher forcing)
report.py       JSON, Markdown table and PNG chart
"""
