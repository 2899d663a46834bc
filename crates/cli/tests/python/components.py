"""Tiny KServe-style components for oxserve's platform tests (Python standard library only).

    components.py predictor MODEL_DIR --model_name NAME --http_port=PORT
        A V2 server for one model: its answer is the input times the number in
        MODEL_DIR/factor.txt (so a test sees that /mnt/models became the model directory).
    components.py transformer --model_name NAME --predictor_host=HOST --http_port=PORT
        KServe's transformer contract: renames the request's input "raw" to "input-0",
        calls http://HOST/v2/models/NAME/infer (sending the Host it was given, as KServe's
        transformers do) and marks the response with parameters.transformed = true.
"""

import argparse
import http.client
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["predictor", "transformer"])
    parser.add_argument("model_dir", nargs="?")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--predictor_host")
    args, _ = parser.parse_known_args()
    factor = 1.0
    if args.role == "predictor":
        with open(os.path.join(args.model_dir, "factor.txt")) as f:
            factor = float(f.read().strip())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in (f"/v2/models/{args.model_name}/ready", "/v2/health/ready", "/v2/health/live"):
                self.reply(200, {"ready": True})
            elif self.path == f"/v1/models/{args.model_name}":
                self.reply(200, {"name": args.model_name, "ready": True})
            else:
                self.reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
            if self.path != f"/v2/models/{args.model_name}/infer":
                return self.reply(404, {"error": f"no route {self.path}"})
            if args.role == "predictor":
                inp = body["inputs"][0]
                out = {"name": "scaled", "datatype": "FP64", "shape": inp["shape"],
                       "data": [x * factor for x in inp["data"]]}
                return self.reply(200, {"model_name": args.model_name, "outputs": [out]})
            for inp in body.get("inputs", []):
                if inp.get("name") == "raw":
                    inp["name"] = "input-0"
            conn = http.client.HTTPConnection(args.predictor_host, timeout=60)
            conn.request("POST", f"/v2/models/{args.model_name}/infer", json.dumps(body),
                         {"content-type": "application/json"})
            resp = conn.getresponse()
            answer = json.loads(resp.read() or b"{}")
            if resp.status != 200:
                return self.reply(resp.status, answer)
            answer.setdefault("parameters", {})["transformed"] = True
            self.reply(200, answer)

    ThreadingHTTPServer(("127.0.0.1", args.http_port), Handler).serve_forever()


if __name__ == "__main__":
    main()
