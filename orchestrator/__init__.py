"""The orchestrator: POST /chat runs plan -> call -> observe -> summarize over HTTP."""
