"""The agent registry: the system of record for agents, departments, budgets and policies.

Not built yet (issue 3): YAML documents as code and the API will write the same tables.
"""

__all__: list[str] = []
