"""One pipeline per capability, called alike by the HTTP routes, the CLI, the benchmarks and other
services: ``fim`` (keystroke completion), ``chat``, ``completion`` (plain text), ``sql``.

Each takes a typed call and returns the router's decision with the generation's events; the
edges only parse, call and format.  ``state.AppState`` holds one of each for a server.
"""
