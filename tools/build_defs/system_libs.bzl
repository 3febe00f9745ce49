"""Wraps Debian's -dev packages as Bazel cc_library targets, with flags from pkg-config.

Tether builds offline against the system's gRPC, protobuf, RocksDB, OpenSSL, abseil and
GoogleTest. Each `pkg_config_library` repository asks pkg-config for the link flags of its
modules when the repository is fetched, so the flags match whatever Debian installed (grpc++,
for example, needs a long list of absl libraries).
"""

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run tools/install_deps.sh): %s" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _dedupe(flags):
    seen = {}
    out = []
    for f in flags:
        if f and f not in seen:
            seen[f] = True
            out.append(f)
    return out

def _pkg_config_library_impl(ctx):
    linkopts = list(ctx.attr.extra_linkopts)
    copts = []
    if ctx.attr.modules:
        linkopts = _pkg_config(ctx, ["--libs"] + ctx.attr.modules).split(" ") + linkopts
        copts = [f for f in _pkg_config(ctx, ["--cflags"] + ctx.attr.modules).split(" ") if f.startswith("-D")]

    # Keep the last occurrence of each -l flag so that link order stays valid.
    linkopts = reversed(_dedupe(reversed(linkopts)))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "lib",
    defines = {defines},
    linkopts = {linkopts},
)
""".format(
        defines = repr([c[2:] for c in copts]),
        linkopts = repr(list(linkopts)),
    ))

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "modules": attr.string_list(doc = "pkg-config module names"),
        "extra_linkopts": attr.string_list(doc = "libraries without a .pc file, e.g. -lgtest"),
    },
    local = True,
)
