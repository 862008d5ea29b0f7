"""Orchestration: loading models, and the train -> freeze -> export -> csim -> report flow."""
