#!/usr/bin/env python3
"""mock_llm.py: an OpenAI-compatible chat-completions server for loopback tests.

Owns nothing but its own socket: binds 127.0.0.1 only, never prints a
request's headers or body (a bearer key may be in them), and stops by itself
(--max-lifetime, or as soon as the process that started it is gone).

  POST /v1/chat/completions   answers per the current mode (below)
  POST /__control             JSON body changes options at run time, e.g.
                              {"mode": "fail-n-then-ok", "fail_n": 2}
  GET  /__requests            JSON list of received requests (capped):
                              {path, headers, body, mode, status, at}
                              (at: arrival, Unix epoch seconds)
  GET  /__stats               counters: requests, by_mode, by_status,
                              in_flight, max_in_flight, options
  POST /__reset               clears requests, stats and per-message counters
                              (options stay; POST /__control to change them)

Modes: ok | error500 | fail-n-then-ok (fail_n answers with fail_status,
default 500, then ok) | 429 (Retry-After: retry_after) | 429-n-then-ok |
garbage (non-JSON body) | malformed (JSON without choices) | no-plan (content
not a plan) | hang (read the request, never answer) | huge (a 20 MB body) |
redirect (302 to redirect_to, default ftp://127.0.0.1/plan) | down (close the
connection without answering).

Per-request override: a user message containing "[mock:MODE]" (or
"[mock:MODE:N]" for the *-n-then-ok modes, counted per distinct user
message) uses that mode for that request only; "[mock:latency:MS]" sets the
latency for that request.  So one mission of a tick can fail while the
others succeed.

Tools protocol: a request with a non-empty "tools" array (OpenAI function
calling) is answered, in mode ok, with tool_calls (finish_reason
"tool_calls") or with a summary (finish_reason "stop"), per a scenario
marker in the user message.  The round is 1 + the number of assistant
messages in the request, so the mock keeps no state between rounds.  Valid
arguments are made from each offered function's schema (required
arguments only; enum -> its first value; plus "rationale"); the preferred
tool is create_task when offered, else the first one.
  (none)                        = [mock:tools-rounds:2]
  [mock:tools-rounds:N]         N-1 rounds of one valid call each, then stop
  [mock:tools-none]             stop at once with a summary, no call
  [mock:tools-invalid-then-fix] round 1 a call missing its required
                                arguments, round 2 the corrected call, stop
  [mock:tools-multi:N]          round 1 N valid calls (default 3), then stop
  [mock:tools-mixed]            round 1 a valid, an unknown-tool and an
                                invalid call in one message, then stop
  [mock:tools-unknown]          round 1 a call of launch_rocket, then stop
  [mock:tools-never-stop]       one valid call in every round, never stops
  [mock:tools-never-stop-invalid] one invalid call in every round
  [mock:tools-hang-round:N]     valid calls until round N, which never answers
  [mock:tools-scripted]         round N answers the calls of the option
                                tool_calls[N-1] (a list of {name, arguments},
                                arguments an object or a string), stop after
  [mock:tools-scripted:K]       the same from tool_calls[K + N - 1] on (an
                                empty list stops)
  [mock:content:K]              json answers: the option contents[K] instead
                                of content
  [mock:want:TOOL]              insists on TOOL: calls it when offered (once,
                                then stops); else calls more_tools with the
                                module its description lists TOOL under;
                                else stops (tests/unit/test_tool_offer.c)
Every tools answer carries usage {prompt_tokens, completion_tokens,
total_tokens} with total_tokens = the total_tokens option, per round.

Random faults (for soak tests): --latency-range LO-HI draws each answer's
latency uniformly from LO..HI ms (a [mock:latency:MS] marker still wins);
--error-rate P answers a request, with probability P, in one of
--error-modes (comma list, default error500) instead of the current mode;
markers and per-model failures are never replaced.  /__stats counts these
under "injected".  Both are options of /__control too (latency_range_ms
[lo, hi] or null, error_rate, error_modes).

Per model: a request whose "model" contains "fail500" answers 500, "fail429"
answers 429 (Retry-After: retry_after), "hang" never answers, whatever the
markers say (for model-fallback chains such as "mock-fail500,gpt-4o-mini").

The port is printed as the first line on stdout (or written to --port-file).
"""
import argparse
import hashlib
import json
import os
import random
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "error500", "fail-n-then-ok", "429", "429-n-then-ok", "garbage",
         "malformed", "no-plan", "hang", "huge", "redirect", "down")
MARKER = re.compile(r"\[mock:([a-z0-9-]+)(?::(\d+))?\]")
WANT = re.compile(r"\[mock:want:([A-Za-z0-9_-]+)\]")
DISCOVERY = "more_tools"
TOOL_SCENARIOS = ("tools-rounds", "tools-none", "tools-invalid-then-fix",
                  "tools-multi", "tools-mixed", "tools-unknown", "tools-never-stop",
                  "tools-never-stop-invalid", "tools-hang-round", "tools-scripted")
MODEL_FAILURES = (("fail500", "error500"), ("fail429", "429"), ("hang", "hang"))
MAX_RECORDED = 2000
MAX_BODY = 4 * 1024 * 1024

DEFAULT_PLAN = {
    "summary": "Eine Aufgabe für die Mission anlegen",
    "steps": [{
        "summary": "Aufgabe anlegen",
        "toolName": "create_task",
        "params": {"title": "Nächsten Schritt der Mission erledigen"},
        "rationale": "Die Mission braucht einen konkreten nächsten Schritt.",
    }],
}


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.options = {
            "mode": args.mode,
            "latency_ms": args.latency,
            "total_tokens": args.total_tokens,
            "fail_n": args.fail_n,
            "fail_status": 500,
            "retry_after": args.retry_after,
            "redirect_to": args.redirect_to,
            "huge_bytes": 20 * 1024 * 1024,
            "huge_no_length": False,    # True: no Content-Length, close at end
            "content": None,     # None: the default plan in a ```json block
            "tool_calls": [],    # [mock:tools-scripted]: the calls of each round
            "contents": [],      # [mock:content:K]: the json answer of request K
            "latency_range_ms": args.latency_range,   # None or [lo, hi]
            "error_rate": args.error_rate,
            "error_modes": args.error_modes,
        }
        self.rng = random.Random(args.seed)
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = []
            self.stats = {"requests": 0, "by_mode": {}, "by_status": {},
                          "in_flight": 0, "max_in_flight": 0, "injected": {}}
            self.failures_left = {}     # per user message, for *-n-then-ok
            self.global_failures = 0    # answered failures in global mode

    def snapshot_options(self):
        with self.lock:
            return dict(self.options)


def user_message(body):
    try:
        for m in body.get("messages", []):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                return m["content"]
    except AttributeError:
        pass
    return ""


# ---- tools protocol ------------------------------------------------------
UNKNOWN_TOOL = "launch_rocket"


def offered_tools(body):
    """{name: parameters schema} of the request's functions, in order; {} if none."""
    tools = body.get("tools") if isinstance(body, dict) else None
    out = {}
    if not isinstance(tools, list):
        return out
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            out[fn["name"]] = params if isinstance(params, dict) else {}
    return out


def tool_round(body):
    """1 + the assistant messages already in the conversation."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return 1
    return 1 + sum(1 for m in msgs if isinstance(m, dict) and m.get("role") == "assistant")


def mock_value(name, prop, tag):
    if isinstance(prop, dict) and isinstance(prop.get("enum"), list) and prop["enum"]:
        return prop["enum"][0]
    kind = prop.get("type") if isinstance(prop, dict) else None
    return {"number": 1, "integer": 1, "boolean": True, "array": [],
            "object": {}}.get(kind, "Mock %s %s" % (name, tag))


def required_args(schema):
    req = schema.get("required") if isinstance(schema, dict) else None
    return [r for r in req if isinstance(r, str) and r != "rationale"] \
        if isinstance(req, list) else []


def valid_args(schema, tag):
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    args = {r: mock_value(r, props.get(r), tag) for r in required_args(schema)}
    args["rationale"] = "Mock: Schritt %s bringt die Mission voran." % tag
    return args


def tool_order(tools):
    names = list(tools)
    if "create_task" in names:
        names.remove("create_task")
        names.insert(0, "create_task")
    return names


def make_call(rnd, i, name, args):
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return {"id": "call_%d_%d" % (rnd, i), "type": "function",
            "function": {"name": name, "arguments": text}}


def valid_calls(tools, rnd, count):
    names = tool_order(tools)
    return [make_call(rnd, i, names[i % len(names)],
                      valid_args(tools[names[i % len(names)]], "r%d.%d" % (rnd, i + 1)))
            for i in range(count)]


def invalid_call(tools, rnd, i):
    """A call missing its required arguments (bad JSON if no tool has any)."""
    for name in tool_order(tools):
        if required_args(tools[name]):
            return make_call(rnd, i, name, {"rationale": "Mock: unvollständiger Aufruf."})
    return make_call(rnd, i, tool_order(tools)[0], "{not json")


def unknown_call(tools, rnd, i):
    name = UNKNOWN_TOOL
    while name in tools:
        name += "_x"
    return make_call(rnd, i, name, {"rationale": "Mock: dieses Werkzeug gibt es nicht."})


def scenario_calls(tools, scenario, rnd):
    """The calls of this round, or None: the model stops."""
    kind, n = scenario
    if kind == "tools-rounds":
        return valid_calls(tools, rnd, 1) if rnd < max(n or 2, 1) else None
    if kind == "tools-hang-round":
        return valid_calls(tools, rnd, 1)       # the hanging round never gets here
    if kind == "tools-invalid-then-fix":
        return {1: [invalid_call(tools, 1, 0)], 2: valid_calls(tools, 2, 1)}.get(rnd)
    if kind == "tools-multi":
        return valid_calls(tools, 1, max(n or 3, 1)) if rnd == 1 else None
    if kind == "tools-mixed":
        return (valid_calls(tools, 1, 1) + [unknown_call(tools, 1, 1),
                                            invalid_call(tools, 1, 2)]) if rnd == 1 else None
    if kind == "tools-unknown":
        return [unknown_call(tools, 1, 0)] if rnd == 1 else None
    if kind == "tools-never-stop":
        return valid_calls(tools, rnd, 1)
    if kind == "tools-never-stop-invalid":
        return [invalid_call(tools, rnd, 0)]
    return None                                 # tools-none


def scripted_calls(opts, rnd, offset):
    rounds = opts.get("tool_calls") or []
    k = (offset or 0) + rnd - 1
    if k >= len(rounds) or not rounds[k]:
        return None
    return [make_call(rnd, i, c.get("name", ""), c.get("arguments", {}))
            for i, c in enumerate(rounds[k])]


def want_calls(body, tools, want, rnd):
    """Calls that insist on tool `want` (see [mock:want:TOOL])."""
    for m in body.get("messages", []):
        for c in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            if c.get("function", {}).get("name") == want:
                return None                     # done: stop
    if want in tools:
        return [make_call(rnd, 0, want, valid_args(tools[want], "r%d.1" % rnd))]
    if DISCOVERY in tools:
        for t in body.get("tools", []):
            fn = t.get("function", {})
            if fn.get("name") != DISCOVERY:
                continue
            for mod, names in re.findall(r"([a-z][a-zA-Z0-9_-]*) \(([^)]*)\)", fn.get("description", "")):
                if want in [n.strip() for n in names.split(",")]:
                    return [make_call(rnd, 0, DISCOVERY,
                                      {"module": mod, "rationale": "Mock: ich brauche %s." % want})]
    return None


def tools_answer(body, tools, scenario, opts):
    rnd = tool_round(body)
    want = WANT.search(user_message(body))
    if want:
        calls = want_calls(body, tools, want.group(1), rnd)
    elif scenario[0] == "tools-scripted":
        calls = scripted_calls(opts, rnd, scenario[1])
    else:
        calls = scenario_calls(tools, scenario, rnd)
    total = opts["total_tokens"]
    if calls:
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        finish = "tool_calls"
    else:
        content = opts["content"]
        if content is None:
            content = "Mock-Plan nach %d Runde(n): die Vorschläge liegen zur Prüfung bereit." % rnd
        message = {"role": "assistant", "content": content}
        finish = "stop"
    return {"id": "chatcmpl-mock-r%d" % rnd, "object": "chat.completion",
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": total - total // 3, "completion_tokens": total // 3,
                      "total_tokens": total}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # else headers + body cost a 40 ms delayed ACK
    wbufsize = 1 << 16               # one write per answer (flushed after each request)
    server_version = "mock-llm/1"

    def log_message(self, fmt, *args):
        pass    # never print requests: headers may hold a bearer key

    # ---- helpers -------------------------------------------------------
    def send_json(self, status, obj, extra_headers=()):
        self.send_raw(status, json.dumps(obj).encode(), "application/json",
                      extra_headers)

    def send_raw(self, status, data, ctype, extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    # ---- routes --------------------------------------------------------
    def do_GET(self):
        st = self.server.state
        if self.path == "/__requests":
            with st.lock:
                data = list(st.requests)
            self.send_json(200, data)
        elif self.path == "/__stats":
            with st.lock:
                data = json.loads(json.dumps(st.stats))
                data["options"] = dict(st.options)
            self.send_json(200, data)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        st = self.server.state
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if self.path == "/__reset":
            st.reset()
            self.send_json(200, {"ok": True})
        elif self.path == "/__control":
            self.control(raw)
        elif self.path == "/v1/chat/completions":
            with st.lock:
                st.stats["in_flight"] += 1
                st.stats["max_in_flight"] = max(st.stats["max_in_flight"],
                                                st.stats["in_flight"])
            try:
                self.chat(raw)
            finally:
                with st.lock:
                    st.stats["in_flight"] -= 1
        else:
            self.send_json(404, {"error": "not found"})

    def control(self, raw):
        st = self.server.state
        try:
            req = json.loads(raw or b"{}")
            if not isinstance(req, dict):
                raise ValueError("control body must be an object")
            if "mode" in req and req["mode"] not in MODES:
                raise ValueError("unknown mode")
            if any(m not in MODES for m in req.get("error_modes", ())):
                raise ValueError("unknown mode in error_modes")
            unknown = set(req) - set(st.options)
            if unknown:
                raise ValueError("unknown option(s): " + ", ".join(sorted(unknown)))
        except ValueError as e:
            self.send_json(400, {"error": str(e)})
            return
        with st.lock:
            st.options.update(req)
            st.global_failures = 0
            opts = dict(st.options)
        self.send_json(200, opts)

    def chat(self, raw):
        st = self.server.state
        opts = st.snapshot_options()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        user = user_message(body) if isinstance(body, dict) else ""
        mode, n = opts["mode"], opts["fail_n"]
        latency = opts["latency_ms"]
        if opts["latency_range_ms"]:
            with st.lock:
                latency = st.rng.randint(*opts["latency_range_ms"])
        per_request = False
        scenario = ("tools-rounds", 2)
        for m in MARKER.finditer(user):
            if m.group(1) == "latency" and m.group(2):
                latency = int(m.group(2))
            elif m.group(1) == "content" and m.group(2):
                contents = opts.get("contents") or []
                if int(m.group(2)) < len(contents):
                    opts["content"] = contents[int(m.group(2))]
            elif m.group(1) in MODES:
                mode, per_request = m.group(1), True
                if m.group(2):
                    n = int(m.group(2))
            elif m.group(1) in TOOL_SCENARIOS:
                scenario = (m.group(1), int(m.group(2)) if m.group(2) else None)
        model_failure = self.model_failure(body)
        if model_failure:
            mode, per_request = model_failure, True
        elif not per_request and opts["error_rate"] > 0:
            with st.lock:
                if st.rng.random() < opts["error_rate"]:
                    mode = st.rng.choice(opts["error_modes"])
                    per_request = True
                    st.stats["injected"][mode] = st.stats["injected"].get(mode, 0) + 1

        effective = self.resolve_n_then_ok(mode, n, user, per_request)
        if effective == "fail":
            effective = "429" if mode == "429-n-then-ok" else "fail"
        tools = offered_tools(body)
        extra = None
        if tools and effective == "ok":
            extra = {"scenario": scenario[0], "round": tool_round(body)}
            if scenario[0] == "tools-hang-round" and extra["round"] >= (scenario[1] or 2):
                effective = "hang"
        status = {"ok": 200, "no-plan": 200, "garbage": 200, "malformed": 200,
                  "huge": 200, "error500": 500, "429": 429, "redirect": 302,
                  "fail": opts["fail_status"]}.get(effective, 0)
        self.record(raw, body, mode, status, extra)

        if latency > 0:
            st.stop.wait(latency / 1000.0)
        if tools and effective == "ok":
            self.send_json(200, tools_answer(body, tools, scenario, opts))
        else:
            self.answer(effective, opts)

    @staticmethod
    def model_failure(body):
        """The failure mode a model name asks for ("...fail500..."), or None."""
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            return None
        for needle, mode in MODEL_FAILURES:
            if needle in model:
                return mode
        return None

    def resolve_n_then_ok(self, mode, n, user, per_request):
        """Map fail-n-then-ok / 429-n-then-ok to 'fail' or 'ok' for this request."""
        if mode not in ("fail-n-then-ok", "429-n-then-ok"):
            return mode
        st = self.server.state
        with st.lock:
            if per_request:
                key = hashlib.sha256(user.encode()).hexdigest()
                used = st.failures_left.get(key, 0)
                st.failures_left[key] = used + 1
            else:
                used = st.global_failures
                st.global_failures += 1
        return "fail" if used < n else "ok"

    def record(self, raw, body, mode, status, extra=None):
        st = self.server.state
        with st.lock:
            st.stats["requests"] += 1
            st.stats["by_mode"][mode] = st.stats["by_mode"].get(mode, 0) + 1
            k = str(status)
            st.stats["by_status"][k] = st.stats["by_status"].get(k, 0) + 1
            if len(st.requests) < MAX_RECORDED:
                entry = {
                    "path": self.path,
                    "headers": {k: v for k, v in self.headers.items()},
                    "body": body if body is not None else raw[:4096].decode("utf-8", "replace"),
                    "mode": mode,
                    "status": status,
                    "at": time.time(),
                }
                if extra:
                    entry.update(extra)     # tools protocol: scenario, round
                st.requests.append(entry)

    def answer(self, mode, opts):
        if mode == "hang":
            # Read, then never answer; notice when the client gives up, so
            # /__stats in_flight shows whether it really closed the socket.
            while not self.server.state.stop.is_set():
                ready, _, _ = select.select([self.connection], [], [], 0.05)
                try:
                    if ready and not self.connection.recv(1, socket.MSG_PEEK):
                        break
                except OSError:
                    break
            self.close_connection = True
            return
        if mode == "down":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode == "error500":
            self.send_json(500, {"error": {"message": "mock internal error"}})
        elif mode == "fail":
            status = opts["fail_status"]
            hdrs = [("Retry-After", str(opts["retry_after"]))] if status == 429 else []
            self.send_json(status, {"error": {"message": "mock failure"}}, hdrs)
        elif mode == "429":
            self.send_json(429, {"error": {"message": "rate limited"}},
                           [("Retry-After", str(opts["retry_after"]))])
        elif mode == "garbage":
            self.send_raw(200, b"<html>this is not json</html>", "text/html")
        elif mode == "malformed":
            self.send_json(200, {"id": "mock", "object": "chat.completion"})
        elif mode == "redirect":
            self.send_raw(302, b"", "text/plain",
                          [("Location", opts["redirect_to"])])
        elif mode == "huge":
            self.send_huge(opts["huge_bytes"], not opts["huge_no_length"])
        else:
            content = opts["content"]
            if mode == "no-plan":
                content = "Ich kann dazu leider keinen Plan machen."
            elif content is None:
                content = ("Hier ist der Plan:\n```json\n"
                           + json.dumps(DEFAULT_PLAN, ensure_ascii=False, indent=2)
                           + "\n```\n")
            self.send_json(200, {
                "id": "chatcmpl-mock", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"total_tokens": opts["total_tokens"]},
            })

    def send_huge(self, size, with_length):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if with_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < size:
                part = chunk[:min(len(chunk), size - sent)]
                self.wfile.write(part)
                sent += len(part)
        except OSError:
            pass    # the client hung up, as it should
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def watchdog(state, max_lifetime, parent):
    deadline = time.monotonic() + max_lifetime
    while not state.stop.is_set():
        if time.monotonic() > deadline or os.getppid() != parent:
            os._exit(0)
        time.sleep(0.2)


def latency_range(text):
    m = re.fullmatch(r"(\d+)-(\d+)", text)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise argparse.ArgumentTypeError("LO-HI in milliseconds, LO <= HI")
    return [int(m.group(1)), int(m.group(2))]


def error_modes(text):
    modes = [m for m in text.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError("a comma list of: " + ", ".join(MODES))
    return modes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0: let the kernel pick")
    ap.add_argument("--port-file", help="write the port here (atomically)")
    ap.add_argument("--mode", choices=MODES, default="ok")
    ap.add_argument("--latency", type=int, default=0, help="milliseconds per answer")
    ap.add_argument("--total-tokens", type=int, default=42)
    ap.add_argument("--fail-n", type=int, default=1)
    ap.add_argument("--retry-after", type=int, default=1, help="seconds, for 429")
    ap.add_argument("--redirect-to", default="ftp://127.0.0.1/plan")
    ap.add_argument("--max-lifetime", type=float, default=600)
    ap.add_argument("--latency-range", type=latency_range, default=None, metavar="LO-HI",
                    help="milliseconds, each answer's latency drawn uniformly")
    ap.add_argument("--error-rate", type=float, default=0.0,
                    help="share of requests answered in one of --error-modes")
    ap.add_argument("--error-modes", type=error_modes, default=["error500"],
                    help="comma list of modes for --error-rate (default error500)")
    ap.add_argument("--seed", type=int, default=None, help="for the random faults")
    args = ap.parse_args()
    if not 0.0 <= args.error_rate <= 1.0:
        ap.error("--error-rate must be between 0 and 1")

    state = State(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = state
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print(port, flush=True)

    threading.Thread(target=watchdog, args=(state, args.max_lifetime, os.getppid()),
                     daemon=True).start()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        state.stop.set()
        os._exit(0)


if __name__ == "__main__":
    main()
