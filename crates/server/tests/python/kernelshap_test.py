"""Compares the server's KernelSHAP with shap.KernelExplainer on the same served model.

shap calls the model through the server's V2 `/infer` (so both explain exactly the same
function), over the same background rows (the model's `background.json`, equally
weighted), with `l1_reg=False` (the server does no feature selection).

1. A budget that covers every coalition (8 features: 254 < nsamples "auto"): both are exact
   and must agree to float precision.
2. A sampled budget (nsamples=60): the server's estimate must lie within shap's sampling
   error, measured over 20 seeds of shap (4 standard deviations of the difference of two
   independent estimates, plus a small floor).

Exits non-zero on a disagreement; prints the figures.
"""

import argparse
import json
import sys
import urllib.request
import warnings

import numpy as np
import shap


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def output(response, name):
    for o in response["outputs"]:
        if o["name"] == name:
            return np.array(o["data"], dtype=np.float64).reshape(o["shape"])
    raise SystemExit(f"no output {name} in the response")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--background", required=True)
    args = parser.parse_args()
    background = np.array(json.load(open(args.background)), dtype=np.float64)
    features = background.shape[1]

    def model(x):
        x = np.asarray(x, dtype=np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                            "data": x.reshape(-1).tolist()}]}
        return output(post(f"{args.url}/v2/models/{args.model}/infer", body), "output")

    rng = np.random.default_rng(3)
    rows = rng.standard_normal((3, features)).astype(np.float32).astype(np.float64)

    def ours(parameters):
        body = {"parameters": parameters, "inputs": [{"name": "input", "datatype": "FP32",
                "shape": list(rows.shape), "data": rows.reshape(-1).tolist()}]}
        response = post(f"{args.url}/v2/models/{args.model}/explain", body)
        # [rows, outputs, features]
        return output(response, "output_attributions"), output(response, "expected_value")

    def theirs(nsamples, seed):
        np.random.seed(seed)
        explainer = shap.KernelExplainer(model, background)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = explainer.shap_values(rows, nsamples=nsamples, l1_reg=False, silent=True)
        values = np.asarray(values)
        if values.shape == (rows.shape[0], features, values.shape[-1]):
            values = values.transpose(0, 2, 1)  # [rows, features, outputs] -> [rows, outputs, features]
        else:
            values = values.transpose(1, 0, 2)  # [outputs, rows, features]
        return values, np.asarray(explainer.expected_value, dtype=np.float64)

    failed = False

    mine, expected = ours({})
    exact, shap_expected = theirs("auto", 0)
    diff = np.abs(mine - exact).max()
    ediff = np.abs(expected - shap_expected).max()
    print(f"kernelshap full enumeration: max |oxserve - shap| = {diff:.2e} (expected value {ediff:.2e})")
    if diff > 1e-4 or ediff > 1e-5:
        failed = True

    mine, _ = ours({"nsamples": 60, "seed": 0})
    runs = np.stack([theirs(60, seed)[0] for seed in range(20)])
    mean, std = runs.mean(axis=0), runs.std(axis=0)
    tolerance = 4.0 * std * np.sqrt(1.0 + 1.0 / len(runs)) + 1e-4
    worst = np.abs(mine - mean) - tolerance
    print(
        f"kernelshap nsamples=60: max |oxserve - mean(shap)| = {np.abs(mine - mean).max():.3e}, "
        f"shap's own std up to {std.max():.3e}, max |oxserve - exact| = {np.abs(mine - exact).max():.3e}, "
        f"max |shap(seed 0) - exact| = {np.abs(runs[0] - exact).max():.3e}"
    )
    if (worst > 0).any():
        failed = True
        print(f"outside shap's sampling error at {np.argwhere(worst > 0).tolist()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
