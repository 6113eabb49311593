#!/usr/bin/env python3
"""The proof of the test bed's SMTP server (`ops/testbed-smtp.sh check`).

Usage: smtp_check.py $VISITAS_TESTBED/smtp/env

With Python's smtplib and the test CA, as a client of the service would:
  - 2525: EHLO offers STARTTLS but not AUTH; after STARTTLS, AUTH PLAIN and AUTH LOGIN,
    a wrong password refused (535), and a message sent without AUTH all the same;
  - 2587: MAIL refused before STARTTLS and before AUTH (530), sent after both;
  - 2465: implicit TLS with AUTH; refused by a client that trusts another CA, and by one
    that connects to 127.0.0.2 (not a name in the certificate);
  - 2526: no STARTTLS, no AUTH; recipients "tempfail..." refused with 451, "reject..."
    with 550.
Each message sent must arrive as <mail-dir>/<port>/<name>.eml with its .json, which says
what the server saw (TLS version, AUTH user, envelope). The check's own files are then
removed. Exits non-zero on the first thing that is not so.
"""
import email
import email.policy
import glob
import json
import os
import smtplib
import ssl
import sys
import time
import uuid
from email.message import EmailMessage

env = dict(line.split("=", 1) for line in open(sys.argv[1]).read().splitlines() if "=" in line)
HOST = env["SMTP_HOST"]
STARTTLS, SUBMISSION = int(env["SMTP_STARTTLS_PORT"]), int(env["SMTP_SUBMISSION_PORT"])
TLS, PLAIN = int(env["SMTP_TLS_PORT"]), int(env["SMTP_PLAIN_PORT"])
USER = env["SMTP_USER"]
PASSWORD = open(env["SMTP_PASSWORD_FILE"]).read().strip()
CA = ssl.create_default_context(cafile=env["SMTP_CA_FILE"])  # chain and host name verified
RUN = uuid.uuid4().hex[:12]
kept = []  # the check's own files, removed at the end


def message(label):
    m = EmailMessage()
    m["From"] = "visitas-check@localhost"
    m["To"] = f"ops-{RUN}@example.test"
    m["Subject"] = f"testbed check {RUN} {label}"
    m["Message-ID"] = f"<{RUN}.{label}@visitas.test>"
    m.set_content(f"Sent by ops/smtp_check.py through {label}.\nNon-ASCII: Größe, façade.\n")
    return m


def arrived(port, label, sent_at, timeout=10.0):
    """The message labelled so, read back from the mail directory of its port."""
    d = os.path.join(env["SMTP_MAIL_DIR"], str(port))
    deadline = time.monotonic() + timeout
    while True:
        for sidecar in sorted(glob.glob(os.path.join(d, "*.json"))):
            with open(sidecar) as f:
                meta = json.load(f)
            eml = os.path.join(d, meta["eml"])
            with open(eml, "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.default)
            if msg["Message-ID"] == f"<{RUN}.{label}@visitas.test>":
                kept.extend([sidecar, eml])
                assert "Größe" in msg.get_content(), msg.get_content()
                print(f"smtp check: {label}: port {meta['port']} {meta['mode']}, tls "
                      f"{meta['tls_version']}, auth {meta['auth_user']}, "
                      f"{(time.monotonic() - sent_at) * 1000:.0f} ms to the file")
                return meta
        if time.monotonic() > deadline:
            raise AssertionError(f"{label}: no message in {d} after {timeout} s")
        time.sleep(0.02)


def expect_meta(meta, **want):
    for k, v in want.items():
        assert meta[k] == v, f"{k}: {meta[k]!r}, want {v!r} in {meta}"
    assert meta["rcpt_tos"] == [f"ops-{RUN}@example.test"], meta
    assert meta["mail_from"] == "visitas-check@localhost", meta


def expect_refused(what, fn, exc, code=None):
    try:
        fn()
    except exc as e:
        got = getattr(e, "smtp_code", None)
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            got = next(iter(e.recipients.values()))[0]
        assert code is None or got == code, f"{what}: {e!r}, want code {code}"
        print(f"smtp check: refused as it should be: {what} ({type(e).__name__}{f' {got}' if got else ''})")
        return
    raise AssertionError(f"{what}: accepted, should have been refused")


# 2525: STARTTLS offered, AUTH only after it and optional.
with smtplib.SMTP(HOST, STARTTLS, timeout=10) as s:
    s.ehlo()
    assert s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
    s.starttls(context=CA)
    s.ehlo()
    assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]


def send_authenticated(mechanism, tag):
    """Over STARTTLS on 2525, logs in with `mechanism` and sends a message tagged `tag`."""
    with smtplib.SMTP(HOST, STARTTLS, timeout=10) as s:
        s.starttls(context=CA)
        s.ehlo()  # again after STARTTLS (login() does it, auth() does not)
        s.user, s.password = USER, PASSWORD
        login = s.auth_plain if mechanism == "PLAIN" else s.auth_login
        assert s.auth(mechanism, login)[0] == 235
        t = time.monotonic()
        s.send_message(message(tag))
    expect_meta(arrived(STARTTLS, tag, t), mode="starttls", tls=True, auth_user=USER)


send_authenticated("PLAIN", "starttls-plain")
send_authenticated("LOGIN", "starttls-login")
with smtplib.SMTP(HOST, STARTTLS, timeout=10) as s:
    s.starttls(context=CA)
    expect_refused("2525 wrong password", lambda: s.login(USER, "wrong"),
                   smtplib.SMTPAuthenticationError, 535)
    t = time.monotonic()
    s.send_message(message("starttls-noauth"))
expect_meta(arrived(STARTTLS, "starttls-noauth", t), mode="starttls", tls=True, auth_user=None)

# 2587: STARTTLS, then AUTH, both required.
with smtplib.SMTP(HOST, SUBMISSION, timeout=10) as s:
    s.ehlo()
    code, _ = s.mail("visitas-check@localhost")
    assert code == 530, f"2587 MAIL before STARTTLS: {code}"
    print("smtp check: refused as it should be: 2587 MAIL before STARTTLS (530)")
    s.starttls(context=CA)
    s.ehlo()
    code, _ = s.mail("visitas-check@localhost")
    assert code == 530, f"2587 MAIL before AUTH: {code}"
    print("smtp check: refused as it should be: 2587 MAIL before AUTH (530)")
    s.login(USER, PASSWORD)
    t = time.monotonic()
    s.send_message(message("submission"))
expect_meta(arrived(SUBMISSION, "submission", t), mode="submission", tls=True, auth_user=USER)

# 2465: implicit TLS, the certificate verified against the test CA.
with smtplib.SMTP_SSL(HOST, TLS, timeout=10, context=CA) as s:
    s.login(USER, PASSWORD)
    t = time.monotonic()
    s.send_message(message("implicit-tls"))
expect_meta(arrived(TLS, "implicit-tls", t), mode="tls", tls=True, auth_user=USER)
other = ssl.create_default_context(cafile=env["SMTP_OTHER_CA_FILE"])
expect_refused("2465 by a client that trusts another CA",
               lambda: smtplib.SMTP_SSL(HOST, TLS, timeout=10, context=other).quit(),
               ssl.SSLCertVerificationError)
expect_refused("2465 at 127.0.0.2, not a name of the certificate",
               lambda: smtplib.SMTP_SSL(env["SMTP_MISMATCH_HOST"], TLS, timeout=10, context=CA).quit(),
               ssl.SSLCertVerificationError)

# 2526: plain; the recipients that ask for a refusal.
with smtplib.SMTP(HOST, PLAIN, timeout=10) as s:
    s.ehlo()
    assert not s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
    t = time.monotonic()
    s.send_message(message("plain"))
    expect_refused("2526 recipient tempfail-x (transient)",
                   lambda: s.sendmail("visitas-check@localhost", ["tempfail-x@example.test"], "Subject: x\r\n\r\nx\r\n"),
                   smtplib.SMTPRecipientsRefused, 451)
    expect_refused("2526 recipient reject-x (permanent)",
                   lambda: s.sendmail("visitas-check@localhost", ["reject-x@example.test"], "Subject: x\r\n\r\nx\r\n"),
                   smtplib.SMTPRecipientsRefused, 550)
expect_meta(arrived(PLAIN, "plain", t), mode="plain", tls=False, tls_version=None, auth_user=None)

for path in kept:
    os.remove(path)
print(f"smtp check: 6 messages through ports {STARTTLS}, {SUBMISSION}, {TLS}, {PLAIN} arrived "
      f"as files, 7 refusals as they should be (run {RUN}; its files removed)")
