"""Private core of linsolve: the Solver base, operators, systems, results, errors, the registry, preconditioners."""
