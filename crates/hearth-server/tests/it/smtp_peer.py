"""An SMTP server for hearthd's e-mail notification tests: aiosmtpd (the asyncio SMTP server
maintained by the aio-libs project) on 127.0.0.1, at a port the system picks.

Prints "listening PORT" once it accepts connections, then one JSON line per accepted message:
{"from", "to", "data"}. Recipients whose local part starts with "refused" are refused for good
(550); those starting with "later" are deferred (451) the first time they are offered.
With `--starttls CERT KEY` it offers STARTTLS with that certificate and requires it before mail.
"""
import argparse
import asyncio
import json
import ssl

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self):
        self.deferred = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused"):
            return "550 5.1.1 no such mailbox here"
        if address.startswith("later") and address not in self.deferred:
            self.deferred.add(address)
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }), flush=True)
        return "250 Message accepted for delivery"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    tls = {}
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.starttls)
        tls = {"tls_context": ctx, "require_starttls": True}
    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp.test", **tls), "127.0.0.1", 0)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
