"""Pack a finished toy UMM run into the package as `builtin` for UMM-Diffusion (a maintainer script).

    .venv/bin/python docs/runs/toyworld/pack_toy_umm.py RUN/umm [--into blipdiff_plugins/builtin/toy_umm]

Stores only what UMM adds to the shipped toy model (pseudo-word encoder in float16, image processor, injector) and
refuses a run whose base is not the shipped toy model (`blipdiff_plugins.builtin.toy_umm.pack_toy_umm`).
"""

from __future__ import annotations

import argparse


def main() -> None:
    from blipdiff_plugins.builtin.toy_umm import pack_toy_umm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("umm", help="the output folder of `blipdiff toyworld train-umm` on the shipped model's run")
    parser.add_argument("--into", default=None, help="destination folder (default: the package's; must not exist)")
    args = parser.parse_args()
    into = pack_toy_umm(args.umm, args.into)
    total = sum(f.stat().st_size for f in into.rglob("*") if f.is_file())
    print(f"{into}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
