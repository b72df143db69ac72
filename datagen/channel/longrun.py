"""The long Re_tau 180 validation run: resumable, checkpointed, logged.

    nice -n 10 python -m datagen.channel.longrun --dir runs/channel180

Statistics are summed per block of steps into <dir>/stats.npz so the averaging window
can be chosen afterwards (``benchmarks/channel.py report``)."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from datagen.channel.checkpoint import load_checkpoint, regrid, save_checkpoint
from datagen.channel.dns import ChannelBlowUp, ChannelConfig, ChannelDNS, adapt_dt, perturbed_laminar
from datagen.channel.stats import StatsAccumulator


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default="runs/channel180")
    ap.add_argument("--re-tau", type=float, default=180.0)
    ap.add_argument("--grid", default="32,64,48", help="nx,ny,nz")
    ap.add_argument("--box", default=f"{math.pi},{math.pi / 2}", help="lx,lz")
    ap.add_argument("--stretch", type=float, default=1.6)
    ap.add_argument("--dt-max", type=float, default=2.5e-3)
    ap.add_argument("--cfl", type=float, default=0.9)
    ap.add_argument("--t-end", type=float, default=200.0)
    ap.add_argument("--sample-every", type=int, default=10)
    ap.add_argument("--block-steps", type=int, default=500)
    ap.add_argument("--ckpt-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amplitude", type=float, default=0.15)
    ap.add_argument("--seed-from", default=None, help="checkpoint of a developed run to interpolate onto --grid "
                    "(same ny and box) instead of starting from a perturbed laminar profile")
    a = ap.parse_args(argv)
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, statf, logf = out / "checkpoint.npz", out / "stats.npz", out / "log.jsonl"
    nx, ny, nz = (int(s) for s in a.grid.split(","))
    lx, lz = (float(s) for s in a.box.split(","))
    if ckpt.exists():
        dns = load_checkpoint(ckpt)
    elif a.seed_from:
        # start from another run's developed flow, interpolated onto this run's x, z grid
        dns = regrid(load_checkpoint(a.seed_from), nx, nz, dt=a.dt_max * 0.6)
    else:
        cfg = ChannelConfig(re_tau=a.re_tau, grid=dict(nx=nx, ny=ny, nz=nz, lx=lx, lz=lz, stretch=a.stretch),
                            dt=a.dt_max * 0.6)
        dns = perturbed_laminar(ChannelDNS(cfg), amplitude=a.amplitude, seed=a.seed)
    acc = StatsAccumulator.load(statf, dns.grid.ny)
    t_wall = time.time()
    with open(logf, "a") as log:
        while dns.t < a.t_end:
            try:
                dns.step()
                if dns.step_count % 10 == 0:
                    dns.check()
                    adapt_dt(dns, a.cfl, a.dt_max)
            except ChannelBlowUp as exc:
                log.write(json.dumps({"error": str(exc)}) + "\n")
                raise
            if dns.step_count % a.sample_every == 0:
                acc.add(dns)
            if dns.step_count % a.block_steps == 0:
                acc.close_block(dns.t)
                m = dict(dns.monitor, dt=dns.cfg.dt, dpdx=dns.last_dpdx,
                         re_tau_wall=math.sqrt(max(dns.monitor["tau_w"], 0)) * dns.cfg.re_tau,
                         wall_s=time.time() - t_wall,
                         ms_per_step=1e3 * dns.timing["step"] / max(dns.timing["steps"], 1))
                log.write(json.dumps(m) + "\n")
                log.flush()
            if dns.step_count % a.ckpt_every == 0:
                save_checkpoint(dns, ckpt)
                acc.save(statf)
    save_checkpoint(dns, ckpt)
    acc.close_block(dns.t)
    acc.save(statf)


if __name__ == "__main__":
    main()
