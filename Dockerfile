# The Tether dev stack's one image (docker-compose.yml runs every service from it).
#
#   docker compose up --build        (README.md, "Docker")
#
# Stage 1 builds the binaries on Debian 12 exactly as on a developer machine
# (tools/install_deps.sh, then bazel build); stage 2 is a slim Debian 12 with those binaries, the
# shared libraries they link (found with ldd on bazel-bin; Debian 12 package names) and the
# container scripts of tools/docker/. //tools/docker:compose_test checks that every binary the
# compose file runs is in TETHER_TARGETS.

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
# install_deps.sh first and alone, so the package layer is reused while the sources change.
COPY tools/install_deps.sh /tmp/install_deps.sh
RUN bash /tmp/install_deps.sh --build-only && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The binaries the image ships: //package:name -> /out/name (stripped). Bazel's output base and
# disk cache (~/.cache) live in a BuildKit cache mount, kept between builds and used by one build
# at a time; bazel-bin points into it, so the binaries are copied out in the same step.
ARG TETHER_TARGETS="//relay:relay_server //cloud:cloud_server //gateway:gateway //agent:agent \
//agent/runner:flow_runner //agent/accounts:account_file_tool //tools/tetherctl:tetherctl \
//tools/devcerts:devcerts"
RUN --mount=type=cache,id=tether-bazel,target=/root/.cache,sharing=locked \
    bazel build ${TETHER_TARGETS} && \
    mkdir -p /out && \
    for label in ${TETHER_TARGETS}; do \
      path=${label#//}; \
      install -m 0755 -s "bazel-bin/${path%%:*}/${path##*:}" /out/; \
    done

FROM debian:12-slim
# Runtime shared libraries of the binaries (readelf -d NEEDED on bazel-bin, mapped with dpkg -S);
# curl for the healthchecks.
RUN apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends \
      libabsl20220623 libc-ares2 libgrpc++1.51 libgrpc29 libpam0g libprotobuf32 libre2-9 \
      librocksdb7.8 libssl3 \
      curl && \
    rm -rf /var/lib/apt/lists/*
# One unprivileged account runs every service and owns the state volume: secret files must be
# mode 0600 and owned by the user reading them. The agents run flows as this account too (only a
# root agent switches accounts), through the account file init.sh writes.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tether --shell /bin/sh tether && \
    install -d -m 0700 -o tether -g tether /var/lib/tether
COPY --from=build /out/ /usr/local/lib/tether/
COPY --chmod=0755 tools/docker/entrypoint.sh tools/docker/init.sh tools/docker/enroll_once.sh \
    tools/docker/demo.sh tools/docker/agent_healthy.sh /usr/local/libexec/tether/
ENV PATH=/usr/local/lib/tether:$PATH
USER tether
# docker-compose.yml mounts the state volume here; a fresh named volume starts as a copy of this
# directory: empty, 0700, owned by tether.
WORKDIR /var/lib/tether
ENTRYPOINT ["/usr/local/libexec/tether/entrypoint.sh"]
