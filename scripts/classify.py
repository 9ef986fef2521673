#!/usr/bin/env python3
"""The classifier of scripts/demo-classify: a row-wise model's predict, standard library only.

Reads CSV with a header (id,x1,x2,x3,x4,...) on stdin and writes `id,class` rows, with a
header, on stdout. Each row goes through a small fixed neural network (4 inputs, 8 tanh
units, 3 classes), so it spends real CPU per row, as a trained model would.
"""
import math
import sys

W1 = [
    [0.8, -1.1, 0.3, 2.0], [-0.5, 0.9, -0.2, 1.4], [1.3, 0.4, -0.1, -2.2], [-0.7, -0.6, 0.25, 0.9],
    [0.2, 1.5, -0.3, -1.0], [1.1, -0.2, 0.15, 0.5], [-1.4, 0.3, 0.05, 1.8], [0.6, 0.7, -0.4, -0.3],
]
B1 = [0.1, -0.2, 0.05, 0.3, -0.1, 0.2, -0.3, 0.0]
W2 = [
    [1.2, -0.8, 0.5, -1.1, 0.7, 0.3, -0.6, 0.9],
    [-0.4, 1.0, -0.9, 0.6, -0.2, 0.8, 0.4, -0.7],
    [0.3, 0.2, 1.1, -0.5, -0.9, -0.6, 1.0, 0.1],
]
B2 = [0.0, 0.1, -0.1]
CLASSES = ("low", "mid", "high")


def main():
    out = sys.stdout
    if not sys.stdin.readline():
        return  # no input at all: no header either
    out.write("id,class\n")
    tanh = math.tanh
    layer1 = list(zip(W1, B1))
    layer2 = list(zip(W2, B2))
    for line in sys.stdin:
        f = line.rstrip("\r\n").split(",", 5)
        a, b, c, d = float(f[1]), float(f[2]), float(f[3]), float(f[4])
        h = [tanh(bias + w[0] * a + w[1] * b + w[2] * c + w[3] * d) for w, bias in layer1]
        s = [bias + sum(wi * hi for wi, hi in zip(w, h)) for w, bias in layer2]
        out.write(f[0] + "," + CLASSES[s.index(max(s))] + "\n")


main()
