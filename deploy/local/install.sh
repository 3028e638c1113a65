#!/usr/bin/env bash
# Installs what the local stack and the tests need on a bare Debian machine of this kind:
# uv and the locked Python dependencies, Debian's redis-server, and (with Java 17 and Maven,
# which the machine carries) the pinned Apache Kafka broker jars and Keycloak distribution.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
uv sync --frozen --quiet

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)"
  apt_install redis-server
fi
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "installing Java 17 and Maven (Debian)"
  apt_install openjdk-17-jre-headless maven
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker-compose (Debian) to validate docker-compose.yml without an engine"
  apt_install docker-compose
fi
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  echo "installing chromium and CJK fonts (Debian) for the browser tests"
  apt_install chromium fonts-noto-cjk
fi
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK SC"; then
  echo "installing CJK fonts (Debian) for the printable posters"
  apt_install fonts-noto-cjk
fi
if [ ! -f /usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf ]; then
  echo "installing Noto fonts of China's other scripts (Debian fonts-noto-core) for the posters"
  apt_install fonts-noto-core
fi
if ! command -v pdftoppm >/dev/null 2>&1; then
  echo "installing poppler-utils (Debian) for the poster tests (pdftotext, pdftoppm)"
  apt_install poppler-utils
fi
.venv/bin/python -m deploy.local.stack fetch-kafka >/dev/null
# fetch-keycloak: the identity provider of the local stack (issue 20); runs on Java 21+.
if [ ! -x "${HOMEWARD_KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java" ]; then
  echo "Keycloak needs Java 21 or newer: set HOMEWARD_KEYCLOAK_JAVA_HOME to its JDK" >&2
fi
.venv/bin/python -m deploy.local.keycloak fetch >/dev/null

# Kubernetes manifest checks (tests/unit/test_k8s.py): kustomize and kubeconform, pinned, built
# from the Go module proxy into a project-local bin dir and reused on the next run.
KUSTOMIZE_VERSION=v5.8.1
KUBECONFORM_VERSION=v0.7.0
TOOLS_BIN="$PWD/.tools/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "installing Go (Debian) to build kustomize and kubeconform"
  apt_install golang-go
fi
built() { go version -m "$TOOLS_BIN/$1" 2>/dev/null | awk '$1=="mod"{print $3}'; }
if [ "$(built kustomize)" != "$KUSTOMIZE_VERSION" ]; then
  echo "building kustomize $KUSTOMIZE_VERSION"
  GOBIN="$TOOLS_BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
if [ "$(built kubeconform)" != "$KUBECONFORM_VERSION" ]; then
  echo "building kubeconform $KUBECONFORM_VERSION"
  GOBIN="$TOOLS_BIN" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
