#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/ from the fixtures and the
api samples: small, valid inputs of each decoder (trimmed model files, hand-encoded protobuf
and archives) so that fuzzing starts from the accepted paths. Rerun after changing a fixture:
python3 fuzz/scripts/make_seeds.py"""

import io
import json
import os
import shutil
import struct
import tarfile
import zipfile

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(*parts):
    with open(os.path.join(ROOT, "fixtures", "models", *parts), "rb") as f:
        return f.read()


# --- V2 REST requests (first byte: < 128 all JSON, else 128 + binary tail length) ---------
REST = {
    "fp32": {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                         "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}]},
    "bytes_params": {"id": "r1", "parameters": {"binary_data_output": True, "n": 3},
                     "inputs": [{"name": "s", "shape": [2], "datatype": "BYTES",
                                 "data": ["hello", "wörld"], "parameters": {"content_type": "str"}}],
                     "outputs": [{"name": "o", "parameters": {"binary_data": False}}]},
    "ints": {"inputs": [{"name": "a", "shape": [3], "datatype": "INT64", "data": [1, -2, 9007199254740993]},
                        {"name": "b", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]},
                        {"name": "c", "shape": [2], "datatype": "FP64", "data": [None, 1e999]}]},
}
for name, body in REST.items():
    write("rest_request", name, b"\x00" + json.dumps(body).encode())
binary = struct.pack("<4f", 1.0, 2.0, -0.5, float("nan")) + struct.pack("<I", 2) + b"hi"
header = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                      "parameters": {"binary_data_size": 16}},
                     {"name": "s", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 6}}]}
write("rest_request", "binary", bytes([128 + len(binary)]) + json.dumps(header).encode() + binary)

# --- structured targets (libFuzzer's `arbitrary` input): a few byte strings ---------------
for target in ["rest_binary", "raw_contents"]:
    write(target, "zeros", bytes(64))
    write(target, "counting", bytes(range(256)))
    write(target, "ones", b"\x01" * 64)

# --- gRPC ModelInferRequest, hand-encoded protobuf -----------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def s(num, text):
    return field(num, 2, text.encode() if isinstance(text, str) else text)


def packed(num, values, fmt=None):
    body = b"".join(struct.pack(fmt, v) for v in values) if fmt else b"".join(varint(v) for v in values)
    return field(num, 2, body)


def param(key, choice_num, payload):
    # map<string, InferParameter>: entry {1: key, 2: InferParameter{choice}}
    return s(1, key) + s(2, payload if choice_num is None else field(choice_num, 0, varint(payload)))


def tensor(name, datatype, shape, contents=b"", params=b""):
    return s(1, name) + s(2, datatype) + packed(3, shape) + params + (s(5, contents) if contents else b"")


fp32 = tensor("input-0", "FP32", [1, 4], packed(6, [6.8, 2.8, 4.8, 1.4], "<f"))
ints = tensor("a", "INT64", [2], packed(3, [5, 1 << 40]))
strs = tensor("s", "BYTES", [2], s(8, b"ab") + s(8, b"\xff\x00"))
write("grpc_request", "typed", s(1, "iris") + s(3, "req-1") + s(5, fp32) + s(5, ints) + s(5, strs)
      + s(6, s(1, "out") + s(2, param("binary_data", 1, 1)))
      + s(4, param("priority", 2, 3)))
raw = struct.pack("<4f", 1, 2, 3, 4)
write("grpc_request", "raw", s(1, "iris") + s(2, "1") + s(5, tensor("input-0", "FP32", [1, 4])) + s(7, raw))
write("grpc_request", "raw_bytes", s(1, "m") + s(5, tensor("t", "BYTES", [2]))
      + s(7, struct.pack("<I", 1) + b"x" + struct.pack("<I", 0)))

# --- V1 bodies (first byte: the model signature, see v1_predict.rs) -------------------------
V1 = [
    (0, {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}),
    (0, {"inputs": [[1, 2, 3, 4]]}),
    (1, {"instances": [1.5, None, -3]}),
    (2, {"instances": [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": "y"}]}),
    (2, {"inputs": {"a": [[1, 2]], "b": ["z"]}}),
    (3, {"instances": [["a"], ["b"]]}),
    (4, {"instances": [[[True, False], [False, True]]]}),
]
for i, (sig, body) in enumerate(V1):
    write("v1_predict", f"body{i}", bytes([sig]) + json.dumps(body).encode())

# --- model-settings.json ------------------------------------------------------------------
SETTINGS = {
    "minimal": {"name": "iris"},
    "batching": {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
                 "max_batch_size": 8, "max_batch_time": 0.002, "preferred_batch_sizes": [4, 8],
                 "max_queue_size": 64, "timeout": 1.5,
                 "parameters": {"version": "2", "sessions": 2, "intra_op_threads": 1, "onnx_native": True}},
    "io": {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
           "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}], "versions": ["1"]},
    "explainer": {"explainer": {"type": "kernel_shap", "background": {"file": "bg.json"}}},
}
for name, body in SETTINGS.items():
    write("model_settings", name, json.dumps(body))

# --- XGBoost: the fixtures trimmed to their first trees -------------------------------------
def trim_xgb(doc, keep):
    model = doc["learner"]["gradient_booster"]["model"]
    per_round = max(1, len(model["trees"]) // max(1, len(model["iteration_indptr"]) - 1))
    n = per_round * keep
    model["trees"] = model["trees"][:n]
    model["tree_info"] = model["tree_info"][:n]
    model["iteration_indptr"] = [i * per_round for i in range(keep + 1)]
    model["gbtree_model_param"]["num_trees"] = str(n)
    return doc


for name in ["xgb-binary", "xgb-regression"]:
    doc = trim_xgb(json.loads(fixture(name, "model.json")), 1)
    write("xgboost_json", name, json.dumps(doc, separators=(",", ":")))


def ubj(v):
    """UBJSON (draft 12) as XGBoost writes it: big-endian, typed arrays for numbers."""
    def key(k):
        b = k.encode()
        return b"l" + struct.pack(">i", len(b)) + b
    if v is None:
        return b"Z"
    if v is True:
        return b"T"
    if v is False:
        return b"F"
    if isinstance(v, int):
        return b"L" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">f", v)
    if isinstance(v, str):
        return b"S" + key(v)
    if isinstance(v, list):
        if v and all(isinstance(x, float) for x in v):
            return b"[$d#l" + struct.pack(">i", len(v)) + b"".join(struct.pack(">f", x) for x in v)
        if v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return b"[$l#l" + struct.pack(">i", len(v)) + b"".join(struct.pack(">i", x) for x in v)
        return b"[" + b"".join(ubj(x) for x in v) + b"]"
    if isinstance(v, dict):
        return b"{" + b"".join(key(k) + ubj(x) for k, x in v.items()) + b"}"
    raise TypeError(v)


for name in ["xgb-binary", "xgb-regression"]:
    doc = trim_xgb(json.loads(fixture(name, "model.json")), 1)
    write("xgboost_ubjson", name, ubj(doc))
write("xgboost_ubjson", "typed-containers", b"{l\x00\x00\x00\x01a[$d#i\x02" + struct.pack(">2f", 1, 2) + b"}")

# --- LightGBM text: the fixtures' header and first trees -----------------------------------
def trim_lgbm(text, keep):
    head, _, rest = text.partition("\nTree=")
    trees = ("Tree=" + rest).split("\n\n\n")[0].split("\nTree=")
    kept = [t if t.startswith("Tree=") else "Tree=" + t for t in trees[:keep]]
    return head + "\n" + "\n".join(kept).rstrip() + "\n\n\nend of trees\n"


for name, keep in [("lgbm-binary", 1), ("lgbm-multiclass", 3), ("lgbm-categorical", 1)]:
    write("lightgbm_text", name, trim_lgbm(fixture(name, "model.txt").decode(), keep))

# --- ONNX: the small fixtures --------------------------------------------------------------
write("onnx_native", "iris-lr", fixture("iris-lr", "model.onnx"))
write("onnx_native", "iris-rf", fixture("iris-rf", "model.onnx"))

# --- routes files ---------------------------------------------------------------------------
write("routes_file", "two-backends", """services:
  - name: iris
    namespace: default
    hosts: [iris.example.com]
    models: [iris]
    backends:
      - url: http://127.0.0.1:8081
        grpc: 127.0.0.1:9081
        weight: 90
        revision: iris-1
      - url: http://127.0.0.1:8082
        weight: 10
        revision: iris-2
        tag: canary
""")
write("routes_file", "minimal", "services:\n  - name: m\n    backends:\n      - url: http://localhost:1/\n")

# --- InferenceService manifests: the api samples --------------------------------------------
samples = os.path.join(ROOT, "crates", "api", "tests", "samples")
for name in ["sklearn.yaml", "canary-list.yaml", "sklearn.json", "transformer.yaml",
             "serving-runtime.yaml", "multi-model.yaml"]:
    with open(os.path.join(samples, name), "rb") as f:
        write("isvc_parse", name, f.read())

# --- archives (first byte: 0 tar.gz, 1 tar, 2 zip) ------------------------------------------
def tar_bytes(gz):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as t:
        d = tarfile.TarInfo("model")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for path, data in [("model/model.onnx", b"onnx"), ("model/model-settings.json", b"{}")]:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model/", b"")
        z.writestr("model/model.txt", b"tree\nversion=v4\n")
    return buf.getvalue()


write("archive_extract", "model.tar.gz", b"\x00" + tar_bytes(True))
write("archive_extract", "model.tar", b"\x01" + tar_bytes(False))
write("archive_extract", "model.zip", b"\x02" + zip_bytes())

if __name__ == "__main__":
    for t in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, t))
        size = sum(os.path.getsize(os.path.join(SEEDS, t, f)) for f in files)
        print(f"{t}: {len(files)} seeds, {size} bytes")
