"""`python -m bench.spy FILE [--top N]`: summarise a py-spy raw (collapsed stacks) profile:
where a process spends its samples, by function, both on-CPU at the top of the stack (self) and
anywhere below (inclusive), with pushgate's own frames listed apart."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        self_time[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if total == 0:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples"]

    def block(title: str, counter: Counter[str], only_ours: bool) -> None:
        lines.append(f"-- {title}")
        shown = 0
        for frame, samples in counter.most_common():
            if only_ours and "pushgate/" not in frame:
                continue
            lines.append(f"{100 * samples / total:5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break

    block("self (top of stack)", self_time, only_ours=False)
    block("inclusive, pushgate frames", inclusive, only_ours=True)
    block("inclusive, all frames", inclusive, only_ours=False)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
