# syntax=docker/dockerfile:1
#
# db-refresher's image: `db-refresher serve` as an unprivileged user on a read-only root filesystem.
#
#   docker build -t db-refresher:0.1.0 .
#   docker build --build-arg PG_MAJORS="15 16 17" -t db-refresher:0.1.0-pg15-17 .
#
# PG_MAJORS: the PostgreSQL server majors to install, space-separated (default 15). The local target
# runs pg_basebackup and pg_ctl of the source's major version and picks the newest installed
# /usr/lib/postgresql/<major>/bin that matches, so install every major your sources run. Debian
# bookworm ships 15; any other major comes from the PostgreSQL project's apt repository
# (apt.postgresql.org), set up with the script and signing key Debian's postgresql-common package ships.
# The cnpg target needs no PostgreSQL binaries at all (CloudNativePG runs pg_basebackup).
#
# Run it (the chart in charts/db-refresher does the same in Kubernetes):
#   docker run --read-only --tmpfs /tmp -v dbr-state:/var/lib/db-refresher \
#     -v "$PWD/config.yaml:/etc/db-refresher/config/config.yaml:ro" -p 8080:8080 db-refresher:0.1.0
# Only /tmp and /var/lib/db-refresher (stateDir) are written. The image has no HEALTHCHECK: in
# Kubernetes the probes on /healthz and /readyz do that job.

# --- build: compile TypeScript with the dev dependencies ------------------------------------------------
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm run build` limited to src/: the image ships dist/src only, and what scripts/ and bench/ import
# (test/ included) stays out of the build context. The status page's script and stylesheet are copied
# as they are (the browser runs them unchanged).
RUN echo '{ "extends": "./tsconfig.build.json", "include": ["src"] }' >tsconfig.image.json \
 && npx tsc -p tsconfig.image.json \
 && mkdir -p dist/src/http/ui && cp src/http/ui/*.js src/http/ui/*.css dist/src/http/ui/

# --- production dependencies only ------------------------------------------------------------------------
FROM node:24.21.0-bookworm-slim AS prod-deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

# --- runtime ----------------------------------------------------------------------------------------------
FROM node:24.21.0-bookworm-slim AS runtime
ARG PG_MAJORS=15
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's packages follow security updates within a release, so they are not pinned to a version.
# postgresql-common first, told not to create a "main" cluster; tini reaps the PostgreSQL servers that
# pg_ctl leaves to PID 1 and forwards SIGTERM to node.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common tini \
 && sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && for major in ${PG_MAJORS}; do [[ "$major" =~ ^[0-9]+$ ]] || { echo "PG_MAJORS: \"$major\" is not a major version" >&2; exit 1; }; done \
 && if [[ " ${PG_MAJORS} " != " 15 " ]]; then /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; fi \
 && packages=() && for major in ${PG_MAJORS}; do packages+=("postgresql-${major}" "postgresql-client-${major}"); done \
 && apt-get install -y --no-install-recommends "${packages[@]}" \
 && for major in ${PG_MAJORS}; do /usr/lib/postgresql/"${major}"/bin/pg_ctl --version && /usr/lib/postgresql/"${major}"/bin/pg_basebackup --version; done \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# An unprivileged user with a fixed numeric id, so runAsNonRoot can verify it. PostgreSQL refuses to run
# as root, so the local target's servers run as this user too.
RUN groupadd --system --gid 10001 db-refresher \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/db-refresher --no-create-home \
      --shell /usr/sbin/nologin db-refresher \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/db-refresher \
 && install -d -m 0755 /etc/db-refresher /etc/db-refresher/config /etc/db-refresher/secrets

WORKDIR /app
# Owned by root and read-only for the service: it cannot change its own code.
COPY package.json ./
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src

ENV NODE_ENV=production \
    DB_REFRESHER_CONFIG=/etc/db-refresher/config/config.yaml \
    HOME=/var/lib/db-refresher \
    TMPDIR=/tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/src/cli/bin.js"]
CMD ["serve"]
