"""Online policies choosing SOR's relaxation parameter w from iteration counts alone
(Khodak, Chow, Balcan, Talwalkar, "Learning to Relax", ICLR 2024).

Every policy has ``select(context=None) -> w`` and ``update(iterations)``, called
alternately once per linear system, ``probabilities(context)`` (its current distribution
over the arms ``omegas``), ``arm`` (index of the last choice), ``cancel()`` (undo a
select() whose system was never solved) and ``reset()``. Random
choices come from a ``numpy.random.Generator`` seeded by ``seed``.

* ``FixedOmega``: always the same w (the comparator).
* ``TsallisINF``: the 1/2-Tsallis-entropy online mirror descent of Zimmert & Seldin
  (2021) over a grid of arms, step size 2/sqrt(t), losses (iterations - 1) normalised by
  their running mean, as in the authors' MATLAB code. By default the loss estimate is
  Zimmert & Seldin's reduced-variance one, (loss - B) 1{played} / p + B, applied to
  arms with p >= eta^2 as theirs. Their B = 1/2 is the centre of losses in [0, 1]; ours
  are normalised to mean 1, so the default is B = 1. It is unbiased like the plain
  estimator but removes much of the variance that the instance-to-instance spread of
  the counts puts into importance weighting. ``baseline=0`` is the plain estimator of
  the authors' code; on the paper's sequences (5 seeds, T = 5000) it pays 1.13x (low
  variance) and 1.17x (high variance) the best fixed w, against 1.10x and 1.15x with
  B = 1 (``benchmarks/results/bandit_sor_kernels_synthetic.md``). Regret against the best fixed arm is
  O(sqrt(d T)) either way.
* ``TsallisINFCB``: contexts binned into equal intervals, one ``TsallisINF`` per bin.
* ``ChebCB``: for each arm a Chebyshev-polynomial regression of the (normalised) cost on
  the scalar context, with coefficients kept in the box the paper's Lipschitz analysis
  allows, and SquareCB (inverse-gap weighting, Foster & Rakhlin 2020) sampling with the
  learning rate schedule of the authors' code.

``replay(policy, costs, contexts)`` runs a policy against a precomputed table of
iteration counts (systems x arms): exactly the feedback it would get online.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import lsq_linear

from linsolve.core.base import check_nonnegative
from linsolve.core.errors import OptionError

DEFAULT_OMEGAS = tuple(np.linspace(1.0, 1.95, 20))


def _grid(omegas) -> np.ndarray:
    g = np.asarray(DEFAULT_OMEGAS if omegas is None else omegas, dtype=np.float64).reshape(-1)
    if g.size == 0:
        raise OptionError("omegas must contain at least one relaxation parameter")
    if not np.all(np.isfinite(g)) or np.any(g <= 0) or np.any(g >= 2):
        raise OptionError(f"every omega must lie in (0, 2), got {g.tolist()}")
    return g


def _seed(seed):
    """None, a non-negative integer or a SeedSequence (what reset() can replay), else an
    OptionError: NumPy's TypeError or bare ValueError would not name the option."""
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise OptionError(f"seed must be None or a non-negative integer, got {seed!r}")


def _range(context_range) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in context_range)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"context_range must be a pair (low, high), got {context_range!r}") from exc
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise OptionError(f"context_range must satisfy low < high, got {context_range!r}")
    return a, b


def _context(context, who: str) -> float:
    if context is None:
        raise OptionError(f"policy {who!r} is contextual: pass context=<number> to solve()/select()")
    try:
        arr = np.asarray(context, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"policy {who!r} needs a numeric scalar context, got {context!r}") from exc
    # a vector context is refused, not cut to its first entry: the policy would learn on a number the caller never chose
    if arr.size != 1 or isinstance(context, (bool, np.bool_, str, bytes)):
        raise OptionError(f"policy {who!r} needs a numeric scalar context, got {context!r}")
    c = float(arr.reshape(-1)[0])
    if not math.isfinite(c):
        raise OptionError(f"policy {who!r} got a non-finite context {context!r}")
    return c


class Policy:
    """Base class: keeps the arms, the generator and the select/update alternation."""

    name = "policy"
    contextual = False

    def __init__(self, omegas=None, seed: int | None = 0):
        self.omegas = _grid(omegas)
        self.seed = _seed(seed)
        self.reset()

    @property
    def d(self) -> int:
        return self.omegas.size

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.t = 1
        self.arm: int | None = None
        self._pending = False
        self._reset()

    def _reset(self) -> None:
        pass

    def select(self, context=None) -> float:
        if self._pending:
            raise OptionError(f"{self.name}: select() called twice without update(iterations)")
        p = self.probabilities(context)
        self._rng_before = self.rng.bit_generator.state
        self.arm = int(self.rng.choice(self.d, p=p)) if self.d > 1 else 0
        self._p = p
        self._p_arm = float(p[self.arm])
        self._pending = True
        self._after_select(context, p)
        return float(self.omegas[self.arm])

    def _after_select(self, context, p) -> None:
        pass

    def cancel(self) -> None:
        """Undo the last ``select()`` when its system was never solved (the solve raised):
        the next select() may then run, and the random stream stays as if the
        failed round had not happened, so a seeded run remains reproducible."""
        if self._pending:
            self.rng.bit_generator.state = self._rng_before
            self._pending = False

    def update(self, iterations) -> None:
        if not self._pending:
            raise OptionError(f"{self.name}: update() called without a preceding select()")
        loss = check_nonnegative("iterations", iterations)
        # Counts are >= 1 whenever a solve did any work; a 0 (x0 already good enough)
        # carries no information about w and is treated as the minimum cost.
        self._update(max(loss, 1.0))
        self._pending = False
        self.t += 1

    def _update(self, loss: float) -> None:
        pass

    def probabilities(self, context=None) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"policy": self.name, "arms": self.d, "seed": self.seed}


class FixedOmega(Policy):
    name = "fixed"

    def __init__(self, omega: float = 1.0, seed: int | None = 0):
        super().__init__([omega], seed)

    def probabilities(self, context=None):
        return np.ones(1)


def tsallis_inf_probabilities(L: np.ndarray, eta: float, tol: float = 1e-12, maxit: int = 100) -> np.ndarray:
    """argmin_p <p, L> - (4/eta) sum sqrt(p_i) over the simplex: p_i = 4 / (eta (L_i - x))^2
    with the normaliser x found by Newton's method. Started at x = min L - 2/eta, where the
    smallest-loss arm alone has mass 1, Newton decreases x monotonically (the mass is an
    increasing convex function of x) and never crosses the pole at min L."""
    L = np.asarray(L, dtype=np.float64)
    x = L.min() - 2.0 / eta
    for _ in range(maxit):
        p = 4.0 / (eta * (L - x)) ** 2
        s = p.sum()
        if abs(s - 1.0) <= tol:
            break
        x -= (s - 1.0) / (eta * np.sum(p ** 1.5))
    p = 4.0 / (eta * (L - x)) ** 2
    return p / p.sum()


class TsallisINF(Policy):
    """Tsallis-INF over the arms ``omegas`` (default 20 on [1, 1.95])."""

    name = "tsallis-inf"

    def __init__(self, omegas=None, seed: int | None = 0, eta0: float = 2.0, baseline: float = 1.0):
        self.eta0 = float(eta0)
        if not self.eta0 > 0:
            raise OptionError(f"eta0 must be positive, got {eta0!r}")
        self.baseline = float(baseline)
        if not math.isfinite(self.baseline):
            raise OptionError(f"baseline must be a finite number, got {baseline!r}")
        super().__init__(omegas, seed)

    def _reset(self):
        self.cum = np.zeros(self.d)  # importance-weighted cumulative (iterations - 1 - B scale)
        self.loss_sum = 0.0
        self.n_losses = 0

    def _scale(self) -> float:
        if self.n_losses == 0:
            return 1.0
        s = self.loss_sum / self.n_losses - 1.0
        return s if s > 0 else 1.0

    def probabilities(self, context=None):
        eta = self.eta0 / math.sqrt(self.t)
        return tsallis_inf_probabilities(self.cum / self._scale(), eta)

    def _update(self, loss):
        # Zimmert & Seldin's estimate (loss - B_i) 1{played i} / p_i + B_i is unbiased; B_i
        # is nonzero only for arms with p_i >= eta^2, since a rarely played arm with a cheap
        # draw would otherwise get an unboundedly negative estimate and lock the policy on.
        eta = self.eta0 / math.sqrt(self.t)
        base = np.where(self._p >= eta * eta, self.baseline * self._scale(), 0.0)
        self.cum += base
        self.cum[self.arm] += (loss - 1.0 - base[self.arm]) / self._p_arm
        self.loss_sum += loss
        self.n_losses += 1


class TsallisINFCB(Policy):
    """Contextual Tsallis-INF: ``bins`` equal bins over ``context_range``; a context goes
    to the bin with the nearest centre and that bin's own Tsallis-INF chooses."""

    name = "tsallis-inf-cb"
    contextual = True

    def __init__(self, omegas=None, seed: int | None = 0, bins: int = 5, context_range=(0.0, 1.0),
                 eta0: float = 2.0, baseline: float = 1.0):
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise OptionError(f"bins must be a positive integer, got {bins!r}")
        self.bins = int(bins)
        self.context_range = _range(context_range)
        self.eta0, self.baseline = eta0, baseline
        super().__init__(omegas, seed)

    def _reset(self):
        a, b = self.context_range
        self.centres = a + (b - a) * np.linspace(0.5 / self.bins, 1 - 0.5 / self.bins, self.bins)
        root = self.seed
        if isinstance(root, np.random.SeedSequence):  # a fresh copy: spawn() advances its counter
            root = np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key)
        seeds = np.random.SeedSequence(root).spawn(self.bins) if not isinstance(root, np.random.SeedSequence) \
            else root.spawn(self.bins)
        self.learners = [TsallisINF(self.omegas, seed=s, eta0=self.eta0, baseline=self.baseline) for s in seeds]
        self.bin = None

    def _bin(self, context) -> int:
        return int(np.argmin(np.abs(self.centres - _context(context, self.name))))

    def probabilities(self, context=None):
        return self.learners[self._bin(context)].probabilities()

    def select(self, context=None):
        if self._pending:
            raise OptionError(f"{self.name}: select() called twice without update(iterations)")
        self.bin = self._bin(context)
        w = self.learners[self.bin].select()
        self.arm = self.learners[self.bin].arm
        self._pending = True
        return w

    def cancel(self):
        if self._pending:
            self.learners[self.bin].cancel()
            self._pending = False

    def _update(self, loss):
        self.learners[self.bin].update(loss)

    def describe(self):
        return {**super().describe(), "bins": self.bins, "context_range": list(self.context_range)}


def chebyshev_features(x: float, m: int) -> np.ndarray:
    """T_0(x), ..., T_{m-1}(x) by the three-term recurrence."""
    f = np.empty(m)
    f[0] = 1.0
    if m > 1:
        f[1] = x
    for j in range(2, m):
        f[j] = 2.0 * x * f[j - 1] - f[j - 2]
    return f


class ChebCB(Policy):
    """ChebCB: per-arm regression of the cost on T_0..T_{m-1} of the context mapped to
    [-1, 1] (``m`` = ``degree`` + 1 features, default 6), SquareCB sampling.

    Costs are normalised by K N with K the largest count seen and N = 2 + 4 (b-a) Lip / K
    (1 + log m), Lip = (max - min count) / (b - a); the regression targets are
    (iterations - 1) / (K N), and coefficients are confined to |theta_0| <= 1/N,
    |theta_j| <= 2 (b-a) Lip / (K N j) (the decay of Chebyshev coefficients of a
    Lipschitz function), falling back from the minimum-norm least-squares fit to the
    box-constrained one only when the former leaves the box. Each arm's data are kept
    as an incrementally updated QR factor, so an update costs O(m^3) whatever t is.
    """

    name = "chebcb"
    contextual = True

    def __init__(self, omegas=None, seed: int | None = 0, degree: int = 5, context_range=(0.0, 1.0)):
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
            raise OptionError(f"degree must be a non-negative integer, got {degree!r}")
        self.m = int(degree) + 1
        self.context_range = _range(context_range)
        super().__init__(omegas, seed)

    def _reset(self):
        d, m = self.d, self.m
        self.theta = np.zeros((d, m))
        self.R = [np.zeros((0, m)) for _ in range(d)]  # QR factor of each arm's features
        self.z = [np.zeros(0) for _ in range(d)]        # Q^T (iterations - 1)
        self.rest = np.zeros(d)                         # squared residual outside range(Q)
        self.count = np.zeros(d, dtype=np.int64)
        self.eta = 0.0
        self.scale = 0.0
        self.kmax, self.kmin = -math.inf, math.inf
        self._spp = self._spl = self._sll = 0.0  # running sums for the prediction error R
        self._feature = None
        self._pred = 0.0

    def _features(self, context) -> np.ndarray:
        a, b = self.context_range
        u = 2.0 * (_context(context, self.name) - a) / (b - a) - 1.0
        return chebyshev_features(min(max(u, -1.0), 1.0), self.m)

    def probabilities(self, context=None):
        return self._probs(self.theta @ self._features(context))

    def _probs(self, yhat):
        istar = int(np.argmin(yhat))
        p = 1.0 / (self.d + self.eta * (yhat - yhat[istar]))
        p[istar] = 0.0
        p[istar] = max(1.0 - p.sum(), 0.0)
        return p / p.sum()

    def _after_select(self, context, p):
        self._feature = self._features(context)
        self._pred = float(self.theta[self.arm] @ self._feature)

    def _fit(self, i: int, lb, ub) -> float:
        """Refit arm i for the current scale; returns the squared residual of a
        box-constrained fit, 0 if the unconstrained one was inside the box."""
        if self.count[i] == 0:
            return 0.0
        R, z = self.R[i], self.z[i] / self.scale
        theta = np.linalg.lstsq(R, z, rcond=None)[0]
        if np.all(np.abs(theta) <= ub):
            self.theta[i] = theta
            return 0.0
        theta = np.zeros(self.m)
        free = ub > 0  # a zero bound pins its coefficient at 0 (all costs equal so far)
        if np.any(free):
            theta[free] = lsq_linear(R[:, free], z, bounds=(lb[free], ub[free]), method="bvls").x
        self.theta[i] = theta
        return float(np.sum((R @ theta - z) ** 2) + self.rest[i] / self.scale**2)

    def _update(self, loss):
        i, f, m = self.arm, self._feature, self.m
        stacked = np.vstack([self.R[i], f[None, :]])
        rhs = np.concatenate([self.z[i], [loss - 1.0]])
        Q, R = np.linalg.qr(stacked, mode="reduced" if stacked.shape[0] > m else "complete")
        qz = Q.T @ rhs
        k = min(stacked.shape[0], m)
        self.rest[i] += float(rhs @ rhs - qz[:k] @ qz[:k]) if stacked.shape[0] > m else 0.0
        self.rest[i] = max(self.rest[i], 0.0)
        self.R[i], self.z[i] = R[:k], qz[:k]
        self.count[i] += 1

        self.kmax, self.kmin = max(self.kmax, loss), min(self.kmin, loss)
        a, b = self.context_range
        bma = b - a
        K = self.kmax
        lip = (self.kmax - self.kmin) / bma
        N = 2.0 + 4.0 * bma * lip / K * (1.0 + math.log(m))
        new_scale = K * N
        refit_all = new_scale != self.scale
        self.scale = new_scale
        ub = np.concatenate([[1.0 / N], 2.0 * bma * lip / self.scale / np.arange(1, m)])
        lb = -ub
        resnorm = 0.0
        for j in (range(self.d) if refit_all else (i,)):
            r = self._fit(j, lb, ub)
            resnorm = r if r else resnorm
        # Learning rate of the authors' code: squared prediction error so far against the
        # regression oracle's error allowance (resnorm, approximation error alpha).
        self._spp += self._pred**2
        self._spl += self._pred * loss
        self._sll += loss**2
        err = self._spp - 2.0 * self._spl / self.scale + self._sll / self.scale**2
        alpha = (math.pi + 2.0 / math.pi * math.log(2.0 * m + 1.0)) / (2.0 * self.scale * (m + 1)) * bma * lip
        denom = err - resnorm + 2.0 * alpha**2 * self.t
        self.eta = 2.0 * self.t * math.sqrt(self.d * self.t / denom) if denom > 1e-300 else 1e300

    def describe(self):
        return {**super().describe(), "degree": self.m - 1, "context_range": list(self.context_range)}


POLICIES = {"fixed": FixedOmega, "tsallis-inf": TsallisINF, "tsallis-inf-cb": TsallisINFCB,
            "chebcb": ChebCB}


def make_policy(name, **options) -> Policy:
    """A policy by name: ``make_policy("chebcb", context_range=(-0.15, 0.45), seed=3)``."""
    if isinstance(name, Policy):
        if options:
            raise OptionError("policy options cannot be given together with a policy object")
        return name
    try:
        cls = POLICIES[str(name).lower()]
    except KeyError:
        raise OptionError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(options) - allowed
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(sorted(unknown))} for policy {name!r}; "
                          f"known: {', '.join(sorted(allowed))}")
    return cls(**options)


def replay(policy: Policy, costs, contexts=None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``policy`` on a table ``costs[t, a]`` = iterations of system t with arm a
    (arms in the order of ``policy.omegas``). Returns (chosen arm per step, cost per step)."""
    costs = np.asarray(costs)
    if costs.ndim != 2 or costs.shape[1] != policy.d:
        raise OptionError(f"costs must be a (systems, {policy.d}) table, got shape {costs.shape}")
    T = costs.shape[0]
    if policy.contextual and (contexts is None or len(contexts) != T):
        raise OptionError(f"policy {policy.name!r} needs one context per system ({T})")
    arms = np.empty(T, dtype=np.int64)
    paid = np.empty(T, dtype=costs.dtype)
    for t in range(T):
        policy.select(None if contexts is None else contexts[t])
        arms[t] = policy.arm
        paid[t] = costs[t, policy.arm]
        policy.update(paid[t])
    return arms, paid
