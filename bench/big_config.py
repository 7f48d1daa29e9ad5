#!/usr/bin/env python3
"""Writes hostile-but-valid CircleCI configs near localci's input limits (issue 9, finding 3).

usage: bench/big_config.py OUT_DIR [NAME ...]

Without names it writes every input below into OUT_DIR (one `NAME.yml` each, about 190 MB in
all); bench/bounds.sh runs `validate` and `process` on them. Nothing written here is committed.

  jobs-5mb         a 4.6 MB 2.1 config: 27,600 jobs that call commands with parameters, each one a
                   workflow entry with arguments and `requires` (compiles)
  jobs-budget      the same shape, as many jobs as fit in the 64 MB budget for YAML values
                   (30,000, 5 MB; compiles)
  jobs-errors      jobs-5mb with an unknown step (`chekout`) in every job: 27,600 errors
  wrong-names      jobs-5mb whose workflow misspells every job and `requires`: 27,600 errors,
                   each name close to every defined one
  jobs-60mb        the same shape, 64 MB of it: just under the 64 MiB file limit, over the budget
                   for values
  blocks-60mb      60 MB of long `run` block scalars in 600 jobs (over the budget)
  alias-bomb       a 1 MB anchored scalar behind four levels of ten aliases each
  laughs           a billion laughs: eleven levels of eight aliases to small values
  block-30mb       one 30 MB block scalar in a run step
  deep-flow        a million `[` (nesting far past the limit)
  deep-map         a top-level map nested 250 deep (just under the nesting limit), and the same
                   text as an environment value
  deep-commands    100 commands that call the next one, logic nested 100 deep (CircleCI's limits)
  commands         40,000 commands that call a shared one with an argument, 4,000 jobs of ten calls
  wide-steps       one job of 262,144 steps from commands that call the next one eight times,
                   seven deep: 300,000 steps and calls, under the expansion budget (compiles)
  fan-out          the same with four jobs (over the 1,000,000 budget of the expansion)
"""

import os
import sys

MB = 1_000_000

HEAD = """version: 2.1
executors:
  small:
    parameters:
      tag: {type: string, default: stable}
    docker:
      - image: cimg/base:<< parameters.tag >>
    resource_class: small
commands:
  greet:
    parameters:
      who: {type: string, default: world}
      times: {type: integer, default: 1}
      loud: {type: boolean, default: false}
    steps:
      - run:
          name: greet << parameters.who >>
          command: echo "hello << parameters.who >> x<< parameters.times >>"
      - when:
          condition: << parameters.loud >>
          steps:
            - run: echo LOUD
  build:
    parameters:
      target: {type: string}
    steps:
      - checkout
      - greet: {who: << parameters.target >>, times: 2}
      - run: make << parameters.target >>
jobs:
"""


def job(i, typo=False):
    """One job of about 120 bytes: two command calls with arguments; every eighth job has a
    parameter of its own and an executor argument."""
    own = i % 8 == 0
    head = (
        "    parameters: {s: {type: string, default: a}}\n"
        f"    executor: {{name: small, tag: '{i % 13}.0'}}\n"
        if own
        else "    executor: small\n"
    )
    who = "<< parameters.s >>" if own else f"w{i % 7}"
    typo = "      - chekout\n" if typo else ""
    return (
        f"  j{i:06d}:\n{head}"
        f"    steps:\n{typo}"
        f"      - build: {{target: test-{i}}}\n"
        f"      - greet: {{who: {who}, loud: {str(i % 2 == 0).lower()}}}\n"
    )


def entry(i):
    """One workflow entry: `requires` on an earlier job (a tree, not a chain), and an argument
    for the jobs that have a parameter."""
    args = "s: b, " if i % 8 == 0 else ""
    requires = f"requires: [j{(i - 1) // 2:06d}]" if i else ""
    if not args and not requires:
        return f"      - j{i:06d}\n"
    return f"      - j{i:06d}: {{{args}{requires}}}\n".replace(", }", "}")


def jobs_config(count, typo=False):
    parts = [HEAD]
    parts.extend(job(i, typo) for i in range(count))
    parts.append("workflows:\n  main:\n    jobs:\n")
    parts.extend(entry(i) for i in range(count))
    return "".join(parts)


def wrong_names(count):
    """jobs-5mb whose workflow names every job with a typo (`k` for `j`): 27,600 unknown jobs
    and as many unknown `requires`, each close to every defined name."""
    return jobs_config(count).replace("      - j", "      - k").replace("requires: [j", "requires: [k")


def jobs_of_size(size):
    """As many jobs as make about `size` bytes."""
    per_job = len(job(12345)) + len(entry(12345))
    return jobs_config(size // per_job)


def blocks(size):
    """Jobs whose run step is a block scalar of 100 KB."""
    line = "          " + "b" * 89 + "\n"
    body = line * 1000
    parts = ["version: 2.1\njobs:\n"]
    names = []
    i = 0
    while sum(map(len, parts)) < size:
        names.append(f"j{i}")
        parts.append(f"  j{i}:\n    docker: [{{image: x}}]\n    steps:\n      - run: |\n{body}")
        i += 1
    parts.append("workflows:\n  w:\n    jobs: [" + ", ".join(names) + "]\n")
    return "".join(parts)


def aliases(name, of, count):
    return f"{name}: &{name} [" + ", ".join([f"*{of}"] * count) + "]\n"


def alias_bomb():
    text = 'version: 2.1\nx: &x "' + "a" * MB + '"\n' + aliases("l1", "x", 10)
    for level in range(2, 5):
        text += aliases(f"l{level}", f"l{level - 1}", 10)
    return text


def laughs():
    text = "version: 2.1\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for level in range(1, 12):
        text += aliases(f"l{level}", f"l{level - 1}", 8)
    return text


def block_30mb():
    line = "          " + "b" * 90 + "\n"
    return (
        "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps:\n      - run: |\n"
        + line * 300_000
        + "workflows:\n  w:\n    jobs: [a]\n"
    )


def deep_flow():
    return "version: 2.1\nx: " + "[" * MB + "\n"


def deep_map():
    depth = 250
    value = "".join(f"{{k{d}: " for d in range(depth)) + "v" + "}" * depth
    return (
        "version: 2.1\njobs:\n  a:\n    parameters:\n      p: {type: string, default: x}\n"
        f"    docker: [{{image: x}}]\n    environment: {{A: '{value}'}}\n"
        "    steps: [checkout]\n"
        f"x-deep: {value}\n"
        "workflows:\n  w:\n    jobs: [a]\n"
    )


def deep_commands():
    depth = 100
    parts = ["version: 2.1\ncommands:\n"]
    for i in range(depth):
        inner = f"c{i + 1}" if i + 1 < depth else "run: echo bottom"
        parts.append(f"  c{i}:\n    steps:\n      - {inner}\n")
    condition = "".join("{and: [true, " for _ in range(depth - 2)) + "true" + "]}" * (depth - 2)
    parts.append(
        "jobs:\n  a:\n    docker: [{image: x}]\n    steps:\n      - c0\n"
        f"      - when:\n          condition: {condition}\n          steps: [checkout]\n"
        "workflows:\n  w:\n    jobs: [a]\n"
    )
    return "".join(parts)


def fan_out(jobs):
    """Commands seven levels deep that each call the next one eight times: 262,144 steps and
    37,449 command calls per job."""
    parts = ["version: 2.1\ncommands:\n"]
    depth = 7
    for i in range(depth):
        inner = "[" + ", ".join([f"c{i + 1}"] * 8) + "]" if i + 1 < depth else "[{run: echo leaf}]"
        parts.append(f"  c{i}:\n    steps: {inner}\n")
    parts.append("jobs:\n")
    names = [f"a{j}" for j in range(jobs)]
    for name in names:
        parts.append(f"  {name}:\n    docker: [{{image: x}}]\n    steps: [c0]\n")
    parts.append("workflows:\n  w:\n    jobs: [" + ", ".join(names) + "]\n")
    return "".join(parts)


def many_commands(count):
    """`count` commands that call a shared command with an argument; jobs of ten calls each."""
    parts = [HEAD]
    jobs = count // 10
    for j in range(jobs):
        calls = "".join(f"      - c{j * 10 + k}\n" for k in range(10))
        parts.append(f"  j{j}:\n    executor: small\n    steps:\n{calls}")
    parts.append("  # the commands come after the jobs that call them\n")
    parts[0] = parts[0].replace("commands:\n", "commands:\n" + "".join(
        f"  c{i}:\n    steps:\n      - greet: {{who: c{i}}}\n      - run: echo {i}\n"
        for i in range(count)
    ), 1)
    parts.append("workflows:\n  main:\n    jobs:\n")
    parts.extend(f"      - j{j}\n" for j in range(jobs))
    return "".join(parts)


# The number of jobs of the shape above that still fits in the 64 MB budget for values
# (found by bisection with `localci validate`: 30,046; about 5 MB).
BUDGET_JOBS = 30_000

INPUTS = {
    "jobs-5mb": lambda: jobs_config(27_600),
    "jobs-budget": lambda: jobs_config(BUDGET_JOBS),
    "jobs-errors": lambda: jobs_config(27_600, typo=True),
    "wrong-names": lambda: wrong_names(27_600),
    "jobs-60mb": lambda: jobs_of_size(60 * MB),
    "blocks-60mb": lambda: blocks(60 * MB),
    "alias-bomb": alias_bomb,
    "laughs": laughs,
    "block-30mb": block_30mb,
    "deep-flow": deep_flow,
    "deep-map": deep_map,
    "deep-commands": deep_commands,
    "commands": lambda: many_commands(40_000),
    "wide-steps": lambda: fan_out(1),
    "fan-out": lambda: fan_out(4),
}


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    names = argv[2:] or list(INPUTS)
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        print(f"unknown input {unknown[0]}; one of: {', '.join(INPUTS)}", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    for name in names:
        with open(os.path.join(out, f"{name}.yml"), "w") as f:
            f.write(INPUTS[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
