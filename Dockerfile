# Placeholder: the production image (multi-stage, non-root, read-only root
# filesystem) comes with the packaging work. This builds and runs the CLI.
FROM node:20.20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev
USER node
ENTRYPOINT ["node", "/app/dist/src/cli/bin.js"]
CMD ["serve", "--config", "/etc/db-refresher/config.yaml"]
