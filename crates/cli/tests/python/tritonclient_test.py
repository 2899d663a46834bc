"""Drives a running oxserve with NVIDIA's tritonclient over HTTP (JSON and binary tensor
data) and gRPC, and checks every answer against the frameworks' own predictions stored in
fixtures/expected. Exits non-zero on the first mismatch."""

import argparse
import json
import pathlib
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

RTOL = 1e-5
ATOL = 1e-6
NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BYTES": np.object_}


def load_expected(fixtures, name):
    d = json.loads((fixtures / "expected" / f"{name}.json").read_text())
    inp = d["input"]
    x = np.array([np.nan if v is None else v for v in inp["data"]], dtype=np.float32).reshape(inp["shape"])
    return inp["name"], x, d["outputs"]


def check(model, transport, outputs, expected):
    for name, exp in expected.items():
        got = outputs(name)
        if got is None:
            raise AssertionError(f"{model} over {transport}: output {name} missing")
        want = np.array(exp["data"], dtype=NUMPY.get(exp["datatype"], np.float64)).reshape(exp["shape"])
        if list(got.shape) != list(want.shape):
            raise AssertionError(f"{model} over {transport}: {name} shape {got.shape} != {want.shape}")
        if want.dtype.kind == "f":
            if not np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True):
                raise AssertionError(f"{model} over {transport}: {name} differs: {got} vs {want}")
        elif not np.array_equal(got, want):
            raise AssertionError(f"{model} over {transport}: {name} differs: {got} vs {want}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--fixtures", required=True, type=pathlib.Path)
    args = ap.parse_args()

    http = httpclient.InferenceServerClient(args.http)
    grpc = grpcclient.InferenceServerClient(args.grpc)
    assert http.is_server_live() and http.is_server_ready()
    assert grpc.is_server_live() and grpc.is_server_ready()
    meta = http.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"], meta
    assert grpc.get_server_metadata().name == meta["name"]

    # NAME.contribs.json beside a fixture holds its TreeSHAP contributions, not predictions.
    models = sorted(
        p.stem
        for p in (args.fixtures / "expected").glob("*.json")
        if not p.name.endswith(".contribs.json")
    )
    checked = 0
    for model in models:
        input_name, x, expected = load_expected(args.fixtures, model)
        assert http.is_model_ready(model), model
        md = http.get_model_metadata(model)
        assert md["name"] == model and md["inputs"][0]["name"] == input_name, md
        assert grpc.get_model_metadata(model).inputs[0].name == input_name

        for binary in (False, True):
            if binary is False and np.isnan(x).any():
                # JSON has no NaN; rows with missing values travel as binary data.
                pass
            i = httpclient.InferInput(input_name, list(x.shape), "FP32")
            i.set_data_from_numpy(x, binary_data=binary or bool(np.isnan(x).any()))
            outs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in expected]
            r = http.infer(model, [i], outputs=outs, request_id=f"{model}-{binary}")
            assert r.get_response()["id"] == f"{model}-{binary}"
            check(model, f"http binary={binary}", r.as_numpy, expected)
            checked += 1

        gi = grpcclient.InferInput(input_name, list(x.shape), "FP32")
        gi.set_data_from_numpy(x)
        r = grpc.infer(model, [gi], outputs=[grpcclient.InferRequestedOutput(n) for n in expected])
        check(model, "grpc", r.as_numpy, expected)
        checked += 1

    # Errors come back as errors, with the server's message.
    for client, kind in ((http, "http"), (grpc, "grpc")):
        try:
            client.get_model_metadata("no-such-model")
        except InferenceServerException as e:
            assert "no-such-model" in str(e), (kind, str(e))
        else:
            raise AssertionError(f"{kind}: unknown model did not fail")
    bad = httpclient.InferInput("input-0", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    try:
        http.infer("xgb-binary", [bad])
    except InferenceServerException as e:
        assert "shape [1,3]" in str(e), str(e)
    else:
        raise AssertionError("wrong shape accepted")

    stats = http.get_inference_statistics("iris-lr")
    assert stats["model_stats"][0]["inference_stats"]["success"]["count"] >= 3, stats
    print(f"tritonclient: {checked} inference checks passed over HTTP JSON, HTTP binary and gRPC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
