#!/usr/bin/env python3
"""Writes digits.bin from scikit-learn's bundled copy of the UCI optical digits data set
(1,797 images of 8x8 pixels, 0 to 16, and their labels 0 to 9), so that Ferry ships the data and
nothing is downloaded: one row of 65 bytes per image, its 64 pixels then its label.

    pip install scikit-learn && python3 Examples/digits/convert.py
"""
import os

from sklearn.datasets import load_digits

digits = load_digits()
out = bytearray()
for image, label in zip(digits.data, digits.target):
    out += bytes(int(v) for v in image) + bytes([int(label)])
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.bin")
open(path, "wb").write(out)
print(f"wrote {path}: {len(digits.target)} rows of 65 bytes")
