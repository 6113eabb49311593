#!/usr/bin/env python3
"""The test bed's SMTP server (ops/testbed-smtp.sh runs it; see docs/testbed.md).

A real SMTP server (aiosmtpd's SMTP protocol on asyncio) that keeps every message it
accepts as files, for the tests to read:

    <mail-dir>/<port>/<name>.eml    the message as received (after dot-unstuffing)
    <mail-dir>/<port>/<name>.json   its envelope and connection: mail_from, rcpt_tos,
                                    port, mode, tls, tls_version, auth_user, ...

Both are written under <mail-dir>/<port>/.tmp/ and renamed into place, the .eml first:
a .json present means its .eml is complete. <name> is the arrival time in nanoseconds
since the epoch (20 digits) and a counter, so names sort in arrival order.

Each --listen MODE:HOST:PORT is one listener (PORT 0: a free port, printed):
    starttls    STARTTLS offered, not required; AUTH PLAIN/LOGIN offered after STARTTLS
                only; a client that does not authenticate may still send
    submission  STARTTLS required before anything but EHLO/NOOP/QUIT; AUTH required
                before MAIL
    tls         implicit TLS (SMTPS) from the first byte; AUTH offered, not required
    plain       no TLS, no AUTH
Recipients whose local part starts with "tempfail" are refused with 451 (a transient
failure: the sender should try again later), with "reject" with 550 (permanent).

It prints "smtp_sink: listening MODE HOST:PORT" for each listener then "smtp_sink:
ready" on standard output (and writes the same as JSON to --ready-file), and exits on
SIGTERM or SIGINT.
"""
import argparse
import asyncio
import hmac
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
from datetime import datetime, timezone

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MODES = ("starttls", "submission", "tls", "plain")
log = logging.getLogger("smtp_sink")


def write_atomically(directory, name, data):
    tmp = os.path.join(directory, ".tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(directory, name))


class Sink:
    """The aiosmtpd handler of one listener: keeps each message as two files."""

    counter = itertools.count(1)

    def __init__(self, mode, mail_root):
        self.mode = mode
        self.mail_root = mail_root

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 Temporary failure asked for by the recipient's name"
        if local.startswith("reject"):
            return "550 5.1.1 Recipient refused as its name asks"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        local_host, local_port = server.transport.get_extra_info("sockname")[:2]
        peer_host, peer_port = session.peer[:2]
        tls = server.transport.get_extra_info("ssl_object")
        now = time.time_ns()
        name = f"{now:020d}-{next(self.counter):06d}"
        directory = os.path.join(self.mail_root, str(local_port))
        os.makedirs(os.path.join(directory, ".tmp"), exist_ok=True)
        raw = envelope.original_content or b""
        meta = {
            "name": name,
            "eml": f"{name}.eml",
            "received_at": datetime.fromtimestamp(now / 1e9, timezone.utc).isoformat(),
            "port": local_port,
            "local": f"{local_host}:{local_port}",
            "mode": self.mode,
            "peer": f"{peer_host}:{peer_port}",
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": tls is not None,
            "tls_version": tls.version() if tls else None,
            "cipher": tls.cipher()[0] if tls else None,
            "auth_user": session.auth_data if session.authenticated else None,
            "size": len(raw),
        }
        write_atomically(directory, f"{name}.eml", raw)
        write_atomically(directory, f"{name}.json",
                         (json.dumps(meta, indent=1) + "\n").encode())
        log.warning("port %s (%s): from %s to %s, tls %s, auth %s -> %s",
                    local_port, self.mode, envelope.mail_from, ",".join(envelope.rcpt_tos),
                    meta["tls_version"], meta["auth_user"], name)
        return f"250 2.0.0 OK queued as {name}"


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            if hmac.compare_digest(auth_data.login, user.encode()) and \
                    hmac.compare_digest(auth_data.password, password.encode()):
                return AuthResult(success=True, auth_data=login)
            log.warning("AUTH %s refused for %r", mechanism, login)
        return AuthResult(success=False, handled=False)
    return authenticate


def listener(spec):
    try:
        mode, rest = spec.split(":", 1)
        host, port = rest.rsplit(":", 1)
        port = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not MODE:HOST:PORT: {spec}")
    if mode not in MODES:
        raise argparse.ArgumentTypeError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return mode, host, port


async def serve(args):
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_context.load_cert_chain(args.cert, args.key)
    with open(args.password_file) as f:
        password = f.read().strip()
    authenticate = authenticator_for(args.user, password)
    loop = asyncio.get_running_loop()
    servers, listening = [], []
    for mode, host, port in args.listen:
        handler = Sink(mode, args.mail_dir)
        options = dict(hostname="localhost", ident="visitas test bed SMTP (aiosmtpd)",
                       enable_SMTPUTF8=True, authenticator=authenticate, loop=loop)
        if mode == "starttls":
            options.update(tls_context=tls_context)
        elif mode == "submission":
            options.update(tls_context=tls_context, require_starttls=True, auth_required=True)
        elif mode == "tls":
            # The connection is TLS from the start; aiosmtpd only knows of STARTTLS.
            options.update(auth_require_tls=False)
        server = await loop.create_server(
            lambda o=options, h=handler: SMTP(h, **o), host, port,
            ssl=tls_context if mode == "tls" else None)
        servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        os.makedirs(os.path.join(args.mail_dir, str(bound), ".tmp"), exist_ok=True)
        listening.append({"mode": mode, "host": host, "port": bound})
        print(f"smtp_sink: listening {mode} {host}:{bound}", flush=True)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "listening": listening}, f)
        os.rename(tmp, args.ready_file)
    print("smtp_sink: ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    log.warning("stopped")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", type=listener, action="append", required=True,
                   metavar="MODE:HOST:PORT", help=f"MODE is one of {', '.join(MODES)}")
    p.add_argument("--mail-dir", required=True, help="messages go to MAIL_DIR/<port>/")
    p.add_argument("--cert", required=True, help="the server's certificate (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--user", default="visitas", help="the one login AUTH accepts")
    p.add_argument("--password-file", required=True, help="its password, on one line")
    p.add_argument("--ready-file", help="written (atomically) once every port listens")
    p.add_argument("--verbose", action="store_true", help="aiosmtpd's own session log too")
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        level=logging.INFO if args.verbose else logging.WARNING)
    mail_log = logging.getLogger("mail.log")  # aiosmtpd's
    if not args.verbose:
        mail_log.setLevel(logging.WARNING)
    # aiosmtpd warns of its own use of a deprecated attribute at every AUTH.
    mail_log.addFilter(lambda r: "login_data is deprecated" not in r.getMessage())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
