#!/usr/bin/env python3
"""A conformance driver that breaks on purpose: it passes every request to a
real driver and changes what comes back, so that the conformance checks can be
shown to catch each kind of broken peer.

    broken_driver.py MODE COMMAND... 

MODE:
  flip-plaintext  flips the first byte of every decrypted plaintext (plaintext_b64)
  wrong-code      answers DECRYPTION_FAILED refusals as SESSION_NOT_FOUND
  hang-on=CMD     never answers the command CMD (and stays alive)
  exit-on=CMD     exits with status 3 instead of answering CMD
  garbage-on=CMD  answers CMD with a line that is not JSON
  swap-id-on=CMD  answers CMD with another request's id
  shout-exit-on=CMD
                  writes 100 KB to stderr before each request (more than a pipe
                  holds: a runner that does not read stderr while it waits never
                  gets the reply), and on CMD writes SHOUT_LINE to stderr, then
                  exits with status 3
  foreign-store   not broken, but its store is in a format the suite does not
                  know: the real driver keeps {"sqlite": P} at P.foreign, and P
                  holds a line of text once init has succeeded
"""
import base64
import json
import subprocess
import sys
import time

SHOUT_LINE = "broken_driver.py: giving up before answering {cmd}, exit status 3"
NOISE = ("broken_driver.py noise " + "." * 977 + "\n") * 100


def main():
    mode, command = sys.argv[1], sys.argv[2:]
    real = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    kind, _, target = mode.partition("=")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            cmd = request.get("cmd")
        except ValueError:
            request, cmd = None, None
        if kind == "shout-exit-on":
            sys.stderr.write(NOISE)
            if cmd == target:
                sys.stderr.write(SHOUT_LINE.format(cmd=cmd) + "\n")
            sys.stderr.flush()
        if cmd == target and kind in ("exit-on", "shout-exit-on"):
            sys.exit(3)
        if cmd == target and kind == "hang-on":
            while True:
                time.sleep(3600)
        foreign = None
        if kind == "foreign-store" and cmd == "init" and isinstance(request.get("store"), dict) \
                and isinstance(request["store"].get("sqlite"), str):
            foreign = request["store"]["sqlite"]
            request["store"]["sqlite"] = foreign + ".foreign"
            line = json.dumps(request) + "\n"
        real.stdin.write(line if line.endswith("\n") else line + "\n")
        real.stdin.flush()
        reply_line = real.stdout.readline()
        if cmd == target and kind == "garbage-on":
            reply_line = "this is not JSON\n"
        elif reply_line:
            reply = json.loads(reply_line)
            if kind == "flip-plaintext" and "plaintext_b64" in reply:
                b = bytearray(base64.b64decode(reply["plaintext_b64"]) or b"\0")
                b[0] ^= 0x01
                reply["plaintext_b64"] = base64.b64encode(bytes(b)).decode()
            if kind == "wrong-code" and reply.get("ok") is False and reply["error"]["code"] == "DECRYPTION_FAILED":
                reply["error"]["code"] = "SESSION_NOT_FOUND"
            if foreign is not None and reply.get("ok") is True:
                with open(foreign, "w") as f:
                    f.write("the store of an implementation the suite does not know\n")
            if cmd == target and kind == "swap-id-on":
                reply["id"] = reply.get("id", 0) + 1000
            reply_line = json.dumps(reply) + "\n"
        sys.stdout.write(reply_line)
        sys.stdout.flush()
        if cmd == "quit":
            break
    real.stdin.close()
    real.wait()


if __name__ == "__main__":
    main()
