"""Thin wrappers so every Tether target builds the same way. Nothing clever lives here."""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

# Warnings and the language level come from .bazelrc; these only add what every target shares.
TETHER_COPTS = []

def tether_cc_library(name, copts = [], **kwargs):
    cc_library(name = name, copts = TETHER_COPTS + copts, **kwargs)

def tether_cc_binary(name, copts = [], **kwargs):
    cc_binary(name = name, copts = TETHER_COPTS + copts, **kwargs)

def tether_cc_test(name, copts = [], deps = [], main = True, size = "small", **kwargs):
    """A GoogleTest test. `main = False` links gtest without gtest_main (the test brings main)."""
    cc_test(
        name = name,
        size = size,
        copts = TETHER_COPTS + copts,
        deps = deps + (["@gtest_main//:lib"] if main else ["@gtest//:lib"]),
        **kwargs
    )
