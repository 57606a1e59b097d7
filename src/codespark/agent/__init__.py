"""The agentic half: a self-healing loop that repairs code until the tests pass.

Modules, one concept each:

- ``sandbox``: run a command with a timeout, rlimits, capped output, a temp HOME and no network;
- ``tests``: which test command a project uses, and its results (pytest through a small report plugin);
- ``localize``: from failing tests to the functions to change, with the feedback a model needs;
- ``edit``: whole-function edits (parse the model's answer, replace one unit, refuse bad edits);
- ``static``: compile errors and undefined names, fixed deterministically where that is safe;
- ``workspace``: a git worktree (or a temp copy) per run, a commit per round, an atomic ``apply``;
- ``loop``: the search (candidates per round, the best kept, iterated), as a stream of events.

The CLI (``codespark fix``) and HTTP (``POST /v1/fix``) layers only render these events.
"""
