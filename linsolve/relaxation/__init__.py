"""SOR/SSOR tuned online by bandits: solvers, policies, Young's theory, kernels, the synthetic sequence."""
