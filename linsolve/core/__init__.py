"""Private core of linsolve: the Solver base, operators, systems, results, errors, the registry
(the generic ``Registry`` every package uses), parameter checks (``validation``), preconditioners,
the parser of solver specifications given as text (``spec``; public as ``linsolve.parse_solver_spec``)."""
