"""The symbolic worker process: requests queued in order, and a clean close."""

import concurrent.futures
import subprocess
import sys

import numpy as np
import pytest

from diffcli import worker
from diffcli.limits import DEFAULT
from diffcli.pipeline import prepare


def _args(request):
    return (request.tree, request.variables, request.command, request.points, request.tangent, request.exact_rows)


def test_queued_requests_are_answered_in_order_by_one_worker():
    backend = worker.Isolated(DEFAULT)
    try:
        requests = [prepare("grad", f"x**{k}", ["x=2"]) for k in range(1, 6)]
        futures = [backend.submit_reference(*_args(r)) for r in requests]
        # d/dx x**k at 2 is k * 2**(k-1)
        assert [f.result(timeout=60).values.tolist() for f in futures] == [[[k * 2 ** (k - 1)]] for k in range(1, 6)]
        assert [f.result().formulas for f in futures] == [["1"], ["2*x"], ["3*x**2"], ["4*x**3"], ["5*x**4"]]
    finally:
        backend.close()


def test_close_drops_the_queue_and_does_not_restart_the_worker():
    backend = worker.Isolated(DEFAULT)
    slow = prepare("hessian", "+".join(f"sin(x**{i})*exp(y/{i})" for i in range(1, 40)), ["x=0.5,y=0.25"])
    futures = [backend.submit_reference(*_args(slow)) for _ in range(4)]
    backend.close()
    assert backend._process is None
    for future in futures[1:]:  # the first may be mid-request when the worker is killed
        with pytest.raises((concurrent.futures.CancelledError, worker.LimitError)):
            future.result(timeout=60)
    assert backend._process is None
    # and it can be used again afterwards: a new worker, a new queue
    again = backend.submit_reference(*_args(prepare("value", "x + 1", ["x=1"])))
    assert np.asarray(again.result(timeout=60).values).tolist() == [2.0]
    backend.close()


def test_the_worker_runs_under_a_lower_hard_memory_limit_set_by_the_shell():
    # `ulimit -v` below --max-memory (shared machines): asking for more was refused, so
    # the worker died at start and every command failed
    code = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from diffcli import worker
from diffcli.pipeline import prepare
from diffcli.limits import DEFAULT
r = prepare("grad", "x**3", ["x=2"])
backend = worker.Isolated(DEFAULT)
try:
    answer = backend.submit_reference(r.tree, r.variables, r.command, r.points, r.tangent, r.exact_rows)
    print(answer.result(timeout=60).values.tolist())
finally:
    backend.close()
worker._cap_address_space(DEFAULT.max_memory_mb << 20)  # what the worker did to itself
print(resource.getrlimit(resource.RLIMIT_AS))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[[12.0]]", f"({3 << 30}, {3 << 30})"]


def test_the_main_process_never_imports_sympy():
    # the worker's answers unpickle into light classes: SymPy loads in the worker alone,
    # on the other core, while this process imports torch (it once loaded here too, 0.5 s)
    code = (
        "import sys\n"
        "from diffcli import worker\n"
        "from diffcli.pipeline import check\n"
        "with worker.using(worker.isolated()):\n"
        "    report = check('grad', 'x if x != 0 else 0', grid=['x=-1:1:3'])\n"
        "    check('hessian', 'exp(x)', grid=['x=700:720:3'])\n"
        "print(report.counts(), sorted(m for m in ('sympy', 'diffcli.reference', 'mpmath') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'ok': 2, 'mismatch': 1} []"
