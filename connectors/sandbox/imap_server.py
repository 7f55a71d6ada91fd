"""A small IMAP4rev1 server (RFC 3501 subset) on asyncio for the sandbox MSSanté operator:
CAPABILITY, NOOP, STARTTLS, LOGIN, AUTHENTICATE PLAIN, SELECT/EXAMINE, [UID] SEARCH, [UID] FETCH
(BODY[], BODY.PEEK[], FLAGS, UID, RFC822.SIZE), [UID] STORE, EXPUNGE, CLOSE, LOGOUT.

It checks what an operator checks: no login before TLS (LOGINDISABLED), the client
certificate when mutual TLS is required, the credentials. It can be told to fail: answer `NO`
to the next commands, say `BYE`, or drop the connection.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import threading
import unicodedata
from collections import deque

from connectors.sandbox.mailstore import Mailbox, MailStore
from connectors.sandbox.server import TLSFiles, free_port

_ATOM = re.compile(rb'\(|\)|"(?:[^"\\]|\\.)*"|\{\d+\+?\}|[^\s()"]+')
MAX_LINE = 64 * 1024


def server_context(tls: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.certfile, tls.keyfile)
    if tls.client_ca:
        context.load_verify_locations(tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _tokens(data: bytes) -> list:
    """IMAP arguments → nested lists of bytes (quoted strings unquoted)."""
    stack: list[list] = [[]]
    for match in _ATOM.finditer(data):
        token = match.group()
        if token == b"(":
            stack.append([])
        elif token == b")":
            if len(stack) > 1:
                inner = stack.pop()
                stack[-1].append(inner)
        elif token.startswith(b'"'):
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", token[1:-1]))
        else:
            stack[-1].append(token)
    return stack[0]


def _sequence(spec: bytes, values: list[int]) -> set[int]:
    """`1:3,7,9:*` over `values` (UIDs or sequence numbers), RFC 3501 §9 sequence-set."""
    top = max(values) if values else 0
    chosen: set[int] = set()
    for part in spec.decode().split(","):
        low, _, high = part.partition(":")
        a = top if low == "*" else int(low)
        b = a if not high else (top if high == "*" else int(high))
        lo, hi = min(a, b), max(a, b)
        chosen.update(v for v in values if lo <= v <= hi)
    return chosen


class Faults:
    def __init__(self):
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def add(self, kind: str, times: int = 1) -> None:
        """"no" (answer NO), "bye" (BYE then close), "drop" (close without a word)."""
        with self._lock:
            self._queue.extend([kind] * times)

    def next(self) -> str | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


class _Session:
    def __init__(self, server: "ImapServer", reader, writer, tls: bool):
        self.server, self.reader, self.writer, self.tls = server, reader, writer, tls
        self.box: Mailbox | None = None
        self.selected = False
        self.read_only = False

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):  # IMAP responses are US-ASCII (RFC 3501 §4): French without accents
            data = unicodedata.normalize("NFKD", data).encode("ascii", "ignore")
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> bytes | None:
        try:
            data = await self.reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        # literals: `{n}` at the end of a line → continuation, n octets, the rest of the line
        while (match := re.search(rb"\{(\d+)(\+?)\}\r\n$", data)) and int(match.group(1)) <= MAX_LINE:
            if not match.group(2):
                await self.send("+ Ready\r\n")
            literal = await self.reader.readexactly(int(match.group(1)))
            rest = await self.reader.readuntil(b"\r\n")
            data = data[:match.start()] + b'"' + literal.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"' + rest
        return data[:-2]

    async def run(self) -> None:
        caps = self.capabilities()
        await self.send(f"* OK [CAPABILITY {caps}] Bac à sable MSSanté IMAP prêt\r\n".encode("utf-8"))
        while True:
            data = await self.line()
            if data is None:
                return
            raw_tag, _, rest = data.partition(b" ")
            tag = raw_tag.decode("ascii", "replace")
            command, _, args = rest.partition(b" ")
            command = command.upper()
            fault = self.server.faults.next()
            if fault == "drop":
                self.writer.close()
                return
            if fault == "bye":
                await self.send("* BYE panne simulée du serveur IMAP\r\n")
                self.writer.close()
                return
            if fault == "no":
                await self.send(tag + " NO [UNAVAILABLE] panne simulée, réessayer plus tard\r\n")
                continue
            uid = False
            if command == b"UID":
                uid = True
                command, _, args = args.partition(b" ")
                command = command.upper()
            handler = getattr(self, f"do_{command.decode('ascii', 'replace').lower()}", None)
            if handler is None:
                await self.send(tag + " BAD commande inconnue ou non prise en charge\r\n")
                continue
            try:
                keep = await handler(tag, args, uid) if command in (b"SEARCH", b"FETCH", b"STORE") else \
                    await handler(tag, args)
            except (ValueError, IndexError):
                await self.send(tag + " BAD arguments invalides\r\n")
                continue
            if keep is False:
                return

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "UIDPLUS"]
        if not self.tls and self.server.tls is not None:
            caps += ["STARTTLS", "LOGINDISABLED"]
        else:
            caps.append("AUTH=PLAIN")
        return " ".join(caps)

    # -------------------------------------------------------------------- any state

    async def do_capability(self, tag, args):
        await self.send(f"* CAPABILITY {self.capabilities()}\r\n")
        await self.send(tag + " OK CAPABILITY terminé\r\n")

    async def do_noop(self, tag, args):
        if self.selected and self.box is not None:
            await self.send(f"* {len(self.box.messages)} EXISTS\r\n")
        await self.send(tag + " OK NOOP terminé\r\n")

    async def do_logout(self, tag, args):
        await self.send("* BYE au revoir\r\n")
        await self.send(tag + " OK LOGOUT terminé\r\n")
        self.writer.close()
        return False

    async def do_starttls(self, tag, args):
        if self.tls or self.server.tls is None:
            await self.send(tag + " BAD TLS déjà actif ou indisponible\r\n")
            return
        await self.send(tag + " OK Début de la négociation TLS\r\n")
        try:
            await self.writer.start_tls(self.server.context)
        except (ssl.SSLError, ConnectionError, OSError):
            self.server.tls_failures += 1
            return False
        self.tls = True

    def _may_login(self) -> bool:
        return self.tls or self.server.tls is None

    async def _login(self, tag, user: bytes, password: bytes):
        box = self.server.store.authenticate(user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
        if box is None:
            self.server.auth_failures += 1
            await self.send(tag + " NO [AUTHENTICATIONFAILED] identifiants refusés\r\n")
            return
        self.box = box
        await self.send(tag + " OK [CAPABILITY IMAP4rev1 UIDPLUS] authentifié\r\n")

    async def do_login(self, tag, args):
        if not self._may_login():
            await self.send(tag + " NO [PRIVACYREQUIRED] LOGIN interdit avant STARTTLS\r\n")
            return
        user, password = _tokens(args)[:2]
        await self._login(tag, user, password)

    async def do_authenticate(self, tag, args):
        parts = args.split()
        if not parts or parts[0].upper() != b"PLAIN":
            await self.send(tag + " NO [CANNOT] mécanisme SASL non pris en charge\r\n")
            return
        if not self._may_login():
            await self.send(tag + " NO [PRIVACYREQUIRED] authentification interdite avant STARTTLS\r\n")
            return
        if len(parts) > 1:
            response = parts[1]
        else:
            await self.send("+ \r\n")
            response = await self.line() or b""
        try:
            _, user, password = base64.b64decode(response, validate=True).split(b"\0")
        except ValueError:
            await self.send(tag + " BAD réponse PLAIN invalide\r\n")
            return
        await self._login(tag, user, password)

    # --------------------------------------------------------------- authenticated

    async def _select(self, tag, args, read_only: bool):
        if self.box is None:
            await self.send(tag + " NO non authentifié\r\n")
            return
        (name, *_) = _tokens(args)
        if name.upper() != b"INBOX":
            await self.send(tag + " NO [NONEXISTENT] seule la boîte INBOX existe\r\n")
            return
        self.selected, self.read_only = True, read_only
        box = self.box
        await self.send(f"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                        f"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] ok\r\n"
                        f"* {len(box.messages)} EXISTS\r\n* 0 RECENT\r\n"
                        f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valides\r\n"
                        f"* OK [UIDNEXT {box.next_uid}] prochain UID\r\n")
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        await self.send(f"{tag} OK [{mode}] boîte sélectionnée\r\n")

    async def do_select(self, tag, args):
        await self._select(tag, args, False)

    async def do_examine(self, tag, args):
        await self._select(tag, args, True)

    async def _need_selected(self, tag) -> bool:
        if not self.selected or self.box is None:
            await self.send(tag + " BAD aucune boîte sélectionnée\r\n")
            return False
        return True

    def _matches(self, message, tokens: list, position: int, seq: int) -> tuple[bool, int]:
        token = tokens[position]
        name = token.upper() if isinstance(token, bytes) else b""
        if isinstance(token, list):
            ok, end = True, 0
            while end < len(token):
                hit, end = self._matches(message, token, end, seq)
                ok = ok and hit
            return ok, position + 1
        if name == b"ALL":
            return True, position + 1
        if name in (b"SEEN", b"UNSEEN", b"DELETED", b"UNDELETED", b"ANSWERED", b"UNANSWERED", b"FLAGGED"):
            flag = "\\" + name.decode().removeprefix("UN").capitalize()
            present = flag in message.flags
            return (not present if name.startswith(b"UN") else present), position + 1
        if name in (b"KEYWORD", b"UNKEYWORD"):
            present = tokens[position + 1].decode() in message.flags
            return (present if name == b"KEYWORD" else not present), position + 2
        if name == b"NOT":
            hit, end = self._matches(message, tokens, position + 1, seq)
            return not hit, end
        if name == b"OR":
            a, middle = self._matches(message, tokens, position + 1, seq)
            b, end = self._matches(message, tokens, middle, seq)
            return a or b, end
        if name == b"UID":
            return message.uid in _sequence(tokens[position + 1], [m.uid for m in self.box.messages]), position + 2
        if name == b"HEADER":
            field, value = tokens[position + 1].decode().lower(), tokens[position + 2].decode().lower()
            head = message.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").lower()
            found = any(line.startswith(field + ":") and value in line for line in head.replace("\r\n ", " ").splitlines())
            return found, position + 3
        if re.fullmatch(rb"[\d:*,]+", token):
            return seq in _sequence(token, list(range(1, len(self.box.messages) + 1))), position + 1
        raise ValueError("critère de recherche inconnu")

    async def do_search(self, tag, args, uid):
        if not await self._need_selected(tag):
            return
        tokens = _tokens(args)
        if tokens and tokens[0].upper() == b"CHARSET":
            tokens = tokens[2:]
        found = []
        for seq, message in enumerate(self.box.messages, start=1):
            ok, position = True, 0
            while position < len(tokens):
                hit, position = self._matches(message, tokens, position, seq)
                ok = ok and hit
            if ok:
                found.append(message.uid if uid else seq)
        await self.send(("* SEARCH" + "".join(f" {n}" for n in found) + "\r\n").encode())
        await self.send(tag + " OK SEARCH terminé\r\n")

    def _chosen(self, spec: bytes, uid: bool) -> list[tuple[int, object]]:
        messages = list(enumerate(self.box.messages, start=1))
        keys = [m.uid for _, m in messages] if uid else [s for s, _ in messages]
        wanted = _sequence(spec, keys)
        return [(s, m) for s, m in messages if (m.uid if uid else s) in wanted]

    async def do_fetch(self, tag, args, uid):
        if not await self._need_selected(tag):
            return
        spec, _, items = args.partition(b" ")
        wanted = _tokens(items)
        wanted = [w.upper() for w in (wanted[0] if wanted and isinstance(wanted[0], list) else wanted)]
        for seq, message in self._chosen(spec, uid):
            parts: list[bytes] = []
            body = None
            if b"BODY[]" in wanted and not self.read_only:
                message.flags.add("\\Seen")
            if uid or b"UID" in wanted:
                parts.append(b"UID %d" % message.uid)
            if b"FLAGS" in wanted:
                parts.append(b"FLAGS (" + " ".join(sorted(message.flags)).encode() + b")")
            if b"RFC822.SIZE" in wanted:
                parts.append(b"RFC822.SIZE %d" % len(message.data))
            if b"BODY.PEEK[]" in wanted or b"BODY[]" in wanted or b"RFC822" in wanted:
                body = message.data
            head = b"* %d FETCH (" % seq + b" ".join(parts)
            if body is not None:
                head += (b" " if parts else b"") + b"BODY[] {%d}\r\n" % len(body)
                await self.send(head + body + b")\r\n")
            else:
                await self.send(head + b")\r\n")
        await self.send(tag + " OK FETCH terminé\r\n")

    async def do_store(self, tag, args, uid):
        if not await self._need_selected(tag):
            return
        if self.read_only:
            await self.send(tag + " NO boîte en lecture seule\r\n")
            return
        spec, _, rest = args.partition(b" ")
        operation, _, flags = rest.partition(b" ")
        operation = operation.upper()
        values = _tokens(flags)
        values = {v.decode() for v in (values[0] if values and isinstance(values[0], list) else values)}
        silent = operation.endswith(b".SILENT")
        for seq, message in self._chosen(spec, uid):
            if operation.startswith(b"+"):
                message.flags |= values
            elif operation.startswith(b"-"):
                message.flags -= values
            else:
                message.flags = set(values)
            if not silent:
                uid_part = f"UID {message.uid} " if uid else ""
                await self.send(f"* {seq} FETCH ({uid_part}FLAGS ({' '.join(sorted(message.flags))}))\r\n")
        await self.send(tag + " OK STORE terminé\r\n")

    async def _expunge(self, announce: bool) -> None:
        with self.server.store.lock:
            doomed = [s for s, m in enumerate(self.box.messages, start=1) if "\\Deleted" in m.flags]
            self.box.messages[:] = [m for m in self.box.messages if "\\Deleted" not in m.flags]
        if announce:
            for seq in reversed(doomed):
                await self.send(f"* {seq} EXPUNGE\r\n")

    async def do_expunge(self, tag, args):
        if not await self._need_selected(tag):
            return
        await self._expunge(True)
        await self.send(tag + " OK EXPUNGE terminé\r\n")

    async def do_close(self, tag, args):
        if not await self._need_selected(tag):
            return
        if not self.read_only:
            await self._expunge(False)
        self.selected = False
        await self.send(tag + " OK CLOSE terminé\r\n")


class ImapServer:
    """`ImapServer(store, tls=TLSFiles(...))` → `.start()`, `.port`, `.faults`, `.stop()`.
    `implicit_tls=True` serves IMAPS (TLS from the first byte) instead of STARTTLS."""

    def __init__(self, store: MailStore, *, host: str = "127.0.0.1", port: int | None = None,
                 tls: TLSFiles | None = None, implicit_tls: bool = False):
        self.store, self.host, self.port = store, host, port or free_port()
        self.tls, self.implicit_tls = tls, implicit_tls
        self.context = server_context(tls) if tls else None
        self.faults = Faults()
        self.auth_failures = self.tls_failures = self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sandbox-imap-{self.port}")

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        session = _Session(self, reader, writer, tls=self.implicit_tls)
        try:
            await session.run()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start():
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, limit=MAX_LINE,
                ssl=self.context if self.implicit_tls else None)

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> "ImapServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("le serveur IMAP du bac à sable n'a pas démarré")
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> "ImapServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
