"""The client package's examples in examples/, run as a user would against a fresh database
(as tests/integration/test_examples.py runs the others): they work as written, offline, and
print what they promise."""
import os
import re
import subprocess
import sys

from conftest import EXAMPLES, HOST, PORT, ROOT


def run(script, dbname):
    env = dict(os.environ, PGHOST=HOST, PGPORT=str(PORT), PGUSER="postgres", PGDATABASE=dbname)
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_langchain_example(dbname):
    for _ in range(2):  # it starts over when run again
        out = run("langchain_feedback.py", dbname).splitlines()
        assert out[0] == "Answer: Green tea is brewed below the boiling point, at about 80 degrees."
        first, second = (re.match(r"  source (\d+): .*factor=1\.00$", ln) for ln in out[1:3])
        assert first and second
        assert out[3] == ("after feedback: Answer: Black tea is brewed with water at the boil "
                          "for three to five minutes.")
        assert re.match(rf"  source {second.group(1)}: score=\S+ factor=1\.10$", out[4])


def test_llamaindex_example(dbname):
    out = run("llamaindex_feedback.py", dbname).splitlines()
    assert "'Green tea" in out[0] and "'Black tea" in out[1]
    assert out[2] == "after feedback:"
    assert "'Black tea" in out[3] and out[3].endswith("factor=1.10")
    assert "'Green tea" not in "\n".join(out[3:])  # rejected: below the page of 2 now


def test_learner_example(dbname):
    out = run("learner_quickstart.py", dbname)
    assert re.search(r"^selected (v1|v2) \(exploring: (True|False)\)$", out, re.M), out
    assert "v2: alpha=2.0 beta=1.0 pulls=1 mean=0.667" in out
    assert "v1: {'alpha': 5.0, 'beta': 5.0, 'pulls': 8, 'total_reward': 4.0, 'mean': 0.5}" in out
    assert "'total_pulls': 9" in out
