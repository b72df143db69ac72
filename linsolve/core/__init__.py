"""Private core of linsolve: the Solver base, operators, systems, results, errors, the registry, preconditioners,
the parser of solver specifications given as text (``spec``; public as ``linsolve.parse_solver_spec``)."""
