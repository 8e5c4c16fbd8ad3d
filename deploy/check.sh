#!/usr/bin/env bash
# Offline checks of deploy/: the Kubernetes base renders (`kubectl kustomize`) and every
# object passes `kubernetes-validate --strict`; deploy/compose.yaml passes the
# compose-spec schema (`check-jsonschema`); every YAML file of deploy/ passes `yamllint`
# (deploy/.yamllint.yaml); the systemd unit passes `systemd-analyze verify`. Exits
# non-zero on the first failure. Installs kubernetes-validate, check-jsonschema and
# yamllint (pinned) into target/deploy-venv when one is missing or at another version.
# The nginx configuration of the compose file (deploy/compose/nginx.conf) is not checked:
# that would need nginx, and the names of its upstream servers resolved.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/deploy-venv
pins=(
    kubernetes-validate==1.37.0
    check-jsonschema==0.39.0
    yamllint==1.38.0
)
installed() {
    "$venv/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
        "$1" 2>/dev/null || true
}
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p target
    if ! python3 -m venv "$venv" 2>/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    fi
fi
install=()
for pin in "${pins[@]}"; do
    [ "$(installed "${pin%%==*}")" = "${pin#*==}" ] || install+=("$pin")
done
if [ ${#install[@]} -gt 0 ]; then
    "$venv/bin/pip" install -q "${install[@]}"
fi
# systemd-analyze is Debian's systemd package (on the machine image; installed where not).
# kubectl is not packaged by Debian in a usable version: the image has it.
if ! command -v systemd-analyze >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd
fi
for tool in kubectl systemd-analyze; do
    command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool is missing" >&2; exit 1; }
done

rendered=target/deploy-k8s.yaml
kubectl kustomize deploy/k8s > "$rendered"
# The objects the base must hold: a renamed or dropped one fails here.
expected="ConfigMap/warmbox-config Deployment/warmbox HorizontalPodAutoscaler/warmbox"
expected+=" Namespace/warmbox PodDisruptionBudget/warmbox Service/warmbox"
found=$(python3 - "$rendered" <<'PY'
import re, sys
docs = open(sys.argv[1]).read().split("\n---\n")
names = []
for d in docs:
    kind = re.search(r"^kind: (\S+)$", d, re.M)
    name = re.search(r"^  name: (\S+)$", d, re.M)
    names.append(f"{kind.group(1)}/{name.group(1)}")
print(" ".join(sorted(names)))
PY
)
if [ "$found" != "$expected" ]; then
    echo "deploy/check.sh: deploy/k8s renders $found, expected $expected" >&2
    exit 1
fi
"$venv/bin/kubernetes-validate" --strict --quiet "$rendered"
echo "deploy/k8s: renders $found; kubernetes-validate --strict: passed"

# The compose file against the compose-spec schema check-jsonschema ships (no network).
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
echo "deploy/compose.yaml: check-jsonschema (compose-spec): passed"

# Every YAML file of deploy/: the compose file, the Kubernetes base, this lint's settings.
"$venv/bin/yamllint" --strict -c deploy/.yamllint.yaml deploy/
echo "deploy/: yamllint --strict: passed"

# systemd-analyze verify also checks that ExecStart's binary exists; where warmbox is not
# installed that one message is expected (exactly it) and anything else fails.
unit=deploy/systemd/warmbox.service
missing="warmbox.service: Command /usr/local/bin/warmbox is not executable: No such file or directory"
set +e
out=$(systemd-analyze verify "$unit" 2>&1)
rc=$?
set -e
rest=$(printf '%s\n' "$out" | grep -vxF "$missing" || true)
if [ -n "$rest" ] || { [ "$rc" -ne 0 ] && [ "$out" != "$missing" ]; }; then
    echo "deploy/check.sh: systemd-analyze verify $unit (exit $rc):" >&2
    printf '%s\n' "$out" >&2
    exit 1
fi
echo "deploy/systemd: systemd-analyze verify: passed${out:+ (binary not installed here: \"$out\")}"
