"""Publishes and consumes messages with the real, unmodified pynsq client, for
tests/real_clients.rs.

Usage: python pubsub.py --nsqd HOST:PORT --topic T --channel C --messages FILE
           [--tls] [--ca FILE] [--cert FILE --key FILE] [--auth-secret S]

FILE holds a JSON array of hex message bodies. The first half is published one PUB each, the
rest as one MPUB. A Reader on T/C finishes each message it gets.

Output (stdout), one JSON object a line:
  {"event":"holding","received":[hex...]}  every body arrived; both connections stay open
                                               until a line arrives on stdin (so the test can
                                               read the server's /stats meanwhile)
  {"event":"done"}                             both connections closed; exit status 0
  {"event":"error","message":"..."}            anything failed; exit status 1

pynsq's snappy and deflate are broken on tornado 6 (nsqio/pynsq#258), so they are not offered.
"""

import argparse
import json
import os
import ssl
import sys
import threading

import nsq
from tornado.ioloop import IOLoop


def emit(event, **fields):
    sys.stdout.write(json.dumps(dict(event=event, **fields)) + "\n")
    sys.stdout.flush()


def fail(message):
    emit("error", message=str(message))
    # Exit at once: tornado callbacks would otherwise keep the process alive.
    os._exit(1)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nsqd", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--messages", required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth-secret")
    return parser.parse_args()


def connection_options(args):
    """The connection keyword arguments pynsq's Reader and Writer pass to each AsyncConn."""
    options = {}
    if args.tls:
        options["tls_v1"] = True
        tls = {"cert_reqs": ssl.CERT_REQUIRED}
        if args.ca:
            tls["ca_certs"] = args.ca
        if args.cert:
            tls["certfile"] = args.cert
            tls["keyfile"] = args.key
        options["tls_options"] = tls
    if args.auth_secret is not None:
        options["auth_secret"] = args.auth_secret
    return options


def watched(base, state):
    """`base` (pynsq's Reader or Writer) failing the run on a connection error or close:
    pynsq would otherwise log it and reconnect quietly, and the test must see the failure."""

    class Watched(base):
        def _on_connection_error(self, conn, error, **kwargs):
            super(Watched, self)._on_connection_error(conn, error, **kwargs)
            if not state["holding"]:
                fail("%s %s: %r" % (base.__name__, conn.id, error))

        def _on_connection_close(self, conn, **kwargs):
            super(Watched, self)._on_connection_close(conn, **kwargs)
            if not state["holding"]:
                fail("%s %s: nsqd closed the connection" % (base.__name__, conn.id))

    return Watched


def main():
    args = parse_args()
    with open(args.messages) as f:
        bodies = [bytes.fromhex(b) for b in json.load(f)]
    options = connection_options(args)
    loop = IOLoop.current()
    received = []
    state = {"holding": False}

    def on_message(message):
        received.append(message.body.hex())
        if len(received) == len(bodies):
            loop.add_callback(hold)
        return True  # FIN

    reader = watched(nsq.Reader, state)(
        topic=args.topic,
        channel=args.channel,
        message_handler=on_message,
        nsqd_tcp_addresses=[args.nsqd],
        max_in_flight=max(1, len(bodies)),
        **options
    )
    writer = watched(nsq.Writer, state)([args.nsqd], **options)

    def hold():
        state["holding"] = True
        emit("holding", received=received)

        def wait_for_line():
            sys.stdin.readline()
            loop.add_callback(finish)

        threading.Thread(target=wait_for_line, daemon=True).start()

    def finish():
        reader.close()
        for conn in list(writer.conns.values()):
            conn.close()
        emit("done")
        os._exit(0)

    def published(what, then=None):
        def callback(conn, data):
            if isinstance(data, nsq.Error):
                fail("%s: %r" % (what, data))
            if then is not None:
                then()

        return callback

    def publish():
        # The Writer connects on its own; publish once its connection (with every upgrade and
        # AUTH) is ready.
        if not any(c.connected() for c in writer.conns.values()):
            loop.call_later(0.01, publish)
            return
        half = len(bodies) // 2

        def one(i):
            if i == half:
                if half < len(bodies):
                    writer.mpub(args.topic, bodies[half:], callback=published("MPUB"))
                return
            writer.pub(args.topic, bodies[i], callback=published("PUB", lambda: one(i + 1)))

        one(0)

    loop.add_callback(publish)
    loop.start()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # anything unexpected is a failure with a message
        fail("%s: %s" % (type(e).__name__, e))
