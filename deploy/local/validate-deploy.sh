#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster (`make test` runs it first):
# - deploy/compose.yaml: `docker-compose config -q` under both Kafka profiles (single, ha) with the
#   variables of deploy/.env.example filled in, and a refusal when its secrets are missing.
#   docker-compose is Debian's package (1.29, Python), installed when missing: its `config` needs
#   no engine.
# - deploy/k8s/: every manifest against the Kubernetes schemas (PyPI's kubernetes-validate, the
#   version in deploy/local/kubernetes-validate-version, in a venv of its own under
#   ~/.cache/rsvp/; it carries the schemas, no network at validation), strict (an unknown field
#   fails), for the oldest and the newest Kubernetes version checked; the kustomization rendered
#   and checked the same way when kubectl is there; and what every workload must have (probes,
#   requests and limits, a non-root user without privileges).
# - the gateway's copy for Kubernetes (deploy/k8s/gateway-nginx.conf) is deploy/gateway/nginx.conf.
# The Dockerfile is not built (no engine here). Exits non-zero on the first invalid file.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/env.sh"

deploy="$RSVP_ROOT/deploy"
k8s="$deploy/k8s"
k8s_versions=(1.30.0 1.37.0)

# --- the files the containers run ---
cmp -s "$deploy/gateway/nginx.conf" "$k8s/gateway-nginx.conf" \
  || die "deploy/k8s/gateway-nginx.conf is not deploy/gateway/nginx.conf; after changing the gateway: cp deploy/gateway/nginx.conf deploy/k8s/gateway-nginx.conf"
sh -n "$k8s/create-topics.sh" || die "deploy/k8s/create-topics.sh: syntax error"
bash -n "$deploy/docker/rsvp-probe" || die "deploy/docker/rsvp-probe: syntax error"

# --- Docker Compose ---
if ! command -v docker-compose >/dev/null; then
  [ "$(id -u)" = 0 ] || die "docker-compose is missing; run as root or install Debian's docker-compose"
  log "installing docker-compose from Debian's packages"
  apt-get update -qq >&2
  # Without the recommended Docker engine: only `config` is used.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >&2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The example's empty secrets filled in: the check is independent of a deploy/.env of your own and
# of this shell's variables (env.sh's among them).
sed -e 's/^\([A-Z_][A-Z0-9_]*\)=$/\1=validate-only-placeholder/' "$deploy/.env.example" >"$tmp/filled.env"
grep -v '^\(PG_PASSWORD\|RSVP_[A-Z_]*\)=' "$deploy/.env.example" >"$tmp/no-secrets.env"
compose() { env -i PATH="$PATH" HOME="$HOME" docker-compose --project-directory "$deploy" -f "$deploy/compose.yaml" "$@"; }
for profile in single ha; do
  compose --env-file "$tmp/filled.env" --profile "$profile" config -q \
    || die "deploy/compose.yaml is invalid (profile $profile)"
done
if compose --env-file "$tmp/no-secrets.env" config -q 2>/dev/null; then
  die "deploy/compose.yaml starts without its secrets: each must be \${VAR:?...}"
fi
# Each secret (an empty line of the example) is required wherever it is used: no default.
for secret in $(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=$/\1/p' "$deploy/.env.example"); do
  grep -q "\${$secret:?" "$deploy/compose.yaml" || die "deploy/compose.yaml does not use $secret"
  if grep -o "\${$secret[^A-Z0-9_][^}]*}" "$deploy/compose.yaml" | grep -qv "^\${$secret:?"; then
    die "deploy/compose.yaml: $secret must be required everywhere (\${$secret:?...}), never defaulted"
  fi
done
log "deploy/compose.yaml: valid under the profiles single and ha; refused without its secrets"

# --- Kubernetes ---
version="$(cat "$here/kubernetes-validate-version")"
venv="${RSVP_DEPLOY_VENV:-$HOME/.cache/rsvp/deploy-venv}"
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$version" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  fi
  log "installing kubernetes-validate $version into $venv"
  python3 -m venv "$venv" || die "cannot create a Python venv in $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version" \
    || die "cannot install kubernetes-validate $version from PyPI"
fi

# validate FILE...: strict, against each version; a warning (a kind without a schema: a typo in
# kind or apiVersion) fails too.
validate() {
  local k out
  for k in "${k8s_versions[@]}"; do
    if ! out="$("$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "$@" 2>&1)" || [ -n "$out" ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
  done
}
manifests=()
for f in "$k8s"/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
validate "${manifests[@]}" || die "deploy/k8s: a manifest is invalid (above)"

# What every workload must have, beyond the schema.
"$venv/bin/python" - "${manifests[@]}" <<'PY' || die "deploy/k8s: a workload lacks what it must have (above)"
import sys, yaml
problems = []
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in ("Deployment", "Job"):
            continue
        name = f"{path.rsplit('/', 1)[-1]}: {doc['kind']} {doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: the pod lacks securityContext.runAsNonRoot: true")
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}, container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: needs allowPrivilegeEscalation: false and capabilities.drop: [ALL]")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                problems.append(f"{where}: needs resource requests and a memory limit")
            if doc["kind"] == "Deployment" and not (c.get("livenessProbe") and c.get("readinessProbe")):
                problems.append(f"{where}: needs a liveness and a readiness probe")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# The kustomization as `kubectl apply -k` would apply it (kubectl's built-in kustomize, offline).
rendered=""
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl kustomize "$k8s" >"$tmp/rendered.yaml" || die "deploy/k8s/kustomization.yaml does not render"
  validate "$tmp/rendered.yaml" || die "deploy/k8s: the rendered kustomization is invalid (above)"
  # The example Secret's placeholders must never be applied over real secrets.
  if grep -q '^kind: Secret$' "$tmp/rendered.yaml"; then
    die "deploy/k8s/kustomization.yaml applies a Secret: the real one is made apart (secret.example.yaml)"
  fi
  rendered=", the kustomization rendered"
fi
log "deploy/k8s: ${#manifests[@]} manifests valid against Kubernetes ${k8s_versions[*]} (strict)$rendered"
