"""MPI worker of tests/linsolve/petsc_support/test_mpi.py: a plain parallel petsc4py program that knows nothing of
linsolve. It assembles the 5-point Laplacian of an N x N grid on COMM_WORLD row by row and
solves a sequence of right-hand sides with a KSP configured from the command line only, e.g.

    mpiexec -n 2 python tests/linsolve/petsc_support/mpi/petsc_program.py 32 -ksp_type python \\
        -ksp_python_type linsolve.petsc_support.python_ksp.GCRODR -ksp_gcrodr_restart 30 \\
        -ksp_gcrodr_recycle 8 -ksp_rtol 1e-9 -pc_type bjacobi

Process 0 prints ``RESULT <json>``: per solve the iterations, the converged reason and the
true relative residual (PETSc's own MatMult and VecNorm).
"""
import json
import sys

import petsc4py

petsc4py.init(sys.argv)
from petsc4py import PETSc  # noqa: E402

N = int(sys.argv[1])
n = N * N
A = PETSc.Mat().createAIJ(size=(n, n), nnz=5, comm=PETSc.COMM_WORLD)
start, end = A.getOwnershipRange()
for row in range(start, end):
    i, j = divmod(row, N)
    A.setValue(row, row, 4.0)
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        if 0 <= i + di < N and 0 <= j + dj < N:
            A.setValue(row, (i + di) * N + j + dj, -1.0)
A.assemble()

ksp = PETSc.KSP().create(comm=PETSc.COMM_WORLD)
ksp.setOperators(A)
ksp.setFromOptions()
x, b = A.createVecs()
r = b.duplicate()
out = {"ksp_type": ksp.getType(), "processes": PETSc.COMM_WORLD.getSize(), "solves": []}
for k in range(3):
    # smooth right-hand sides that change a little from one solve to the next
    arr = b.getArray()
    rows = range(start, end)
    arr[:] = [1.0 + 0.1 * k * ((row % N) / N) for row in rows]
    b.assemble()
    ksp.solve(b, x)
    A.mult(x, r)
    r.aypx(-1.0, b)
    out["solves"].append({"its": ksp.getIterationNumber(), "reason": int(ksp.getConvergedReason()),
                          "residual": r.norm() / b.norm()})
if PETSc.COMM_WORLD.getRank() == 0:
    print("RESULT " + json.dumps(out), flush=True)
