"""A worker process driven over a pipe, one JSON line a call: how the
benchmarks run torchvision in its own virtualenv (compare_torchvision.py,
time_to_accuracy.py). Standard library only, so both interpreters import
it.

A call is {"command": NAME, **arguments} on the worker's stdin; the worker
runs its method NAME(**arguments) and answers one JSON line on stdout;
"quit" ends it.
"""

import json
import subprocess
import sys


def serve(worker):
    """Answers calls on stdin with worker's methods until "quit" or the end
    of the input."""
    for line in iter(sys.stdin.readline, ""):
        command = json.loads(line)
        name = command.pop("command")
        if name == "quit":
            break
        answer = getattr(worker, name)(**command)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class PipeClient(object):
    """Starts a worker process (argv, with environment env) and calls it;
    who: the script's name for the error of a dead worker ("" for none)."""

    def __init__(self, argv, env, who=""):
        self.who = who
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env)

    def call(self, command, **arguments):
        """The worker's answer (decoded JSON) to command(**arguments)."""
        self.send(command, **arguments)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("{}the torch worker died during {!r}".format(
                self.who + ": " if self.who else "", command))
        return json.loads(line)

    def send(self, command, **arguments):
        """Writes a call without reading an answer."""
        arguments["command"] = command
        self.process.stdin.write(json.dumps(arguments) + "\n")
        self.process.stdin.flush()

    def close(self):
        """Ends the worker and waits for it (60 s at most)."""
        self.send("quit")
        self.process.wait(timeout=60)
