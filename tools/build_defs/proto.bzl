"""Compiles .proto files with the system protoc and grpc_cpp_plugin (Debian's packages).

tether_proto_library(name, srcs, deps, grpc) runs protoc once over `srcs` and wraps the generated
.pb.cc/.pb.h (and .grpc.pb.cc/.grpc.pb.h when grpc = True) in a cc_library named `name`.
Imports are resolved from the repository root, so `import "common/proto/x.proto";` works.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def tether_proto_library(name, srcs, deps = [], proto_deps = [], grpc = False, visibility = None):
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    plugin = ""
    if grpc:
        plugin = "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) --grpc_out=$(GENDIR) "

    native.genrule(
        name = name + "_genproto",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = ("protoc --proto_path=. --cpp_out=$(GENDIR) " + plugin +
               " ".join(["$(location %s)" % s for s in srcs])),
        message = "protoc " + name,
    )

    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@grpc//:lib", "@protobuf//:lib"],
        visibility = visibility,
    )
