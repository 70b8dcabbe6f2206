# shellcheck shell=bash
# Builds and caches the pinned test tools (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kube-proxy, kubelet) from the Go module proxy. Sourced by hack/control-plane, hack/lab and hack/test.
#
# Why a wrapper module: k8s.io/kubernetes lists its staging modules (k8s.io/api, k8s.io/client-go, ...) at
# v0.0.0 and resolves them with replace directives pointing into its own tree, which a dependent module does
# not inherit. A small module that requires k8s.io/kubernetes and replaces every staging module with the
# matching v0.X.Y release builds the real commands unchanged.

FERROLB_K8S_VERSION="${FERROLB_K8S_VERSION:-v1.37.2}"
FERROLB_ETCD_VERSION="${FERROLB_ETCD_VERSION:-v3.7.0}"
FERROLB_HELM_VERSION="${FERROLB_HELM_VERSION:-v3.22.0}"
FERROLB_CACHE="${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# alive PID: the process exists and is not a zombie. `kill -0` succeeds on a zombie, and a killed process
# whose parent has exited can stay one for a long time (this sandbox's pid 1 reaps late).
alive() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	[[ "${stat%% *}" != Z ]]
}

# tools_bin_dir prints the directory holding the binaries; KUBEBUILDER_ASSETS wins when it has what we need.
tools_bin_dir() {
	if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
		echo "$KUBEBUILDER_ASSETS"
	else
		echo "$FERROLB_CACHE/k8s-$FERROLB_K8S_VERSION-etcd-$FERROLB_ETCD_VERSION/bin"
	fi
}

# tool_path NAME prints the path of one tool, falling back to the cache for tools KUBEBUILDER_ASSETS lacks
# (setup-envtest ships no kube-controller-manager or kube-proxy).
tool_path() {
	local dir; dir="$(tools_bin_dir)"
	if [[ -x "$dir/$1" ]]; then echo "$dir/$1"; else echo "$FERROLB_CACHE/k8s-$FERROLB_K8S_VERSION-etcd-$FERROLB_ETCD_VERSION/bin/$1"; fi
}

_build_etcd() {
	local out="$1" work="$2"
	mkdir -p "$work/etcd" && cd "$work/etcd" || return 1
	cat > go.mod <<GOMOD
module ferrolb.test/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $FERROLB_ETCD_VERSION
GOMOD
	cat > main.go <<'GO'
// Command etcd runs the etcd server exactly as the upstream etcd binary does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
	GOFLAGS=-mod=mod go mod tidy >/dev/null || return 1
	log "building etcd $FERROLB_ETCD_VERSION (first run only)"
	GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out/etcd" . || return 1
}

# _k8s_wrapper_module DIR: writes the wrapper module (see the top of this file) into DIR and enters it.
_k8s_wrapper_module() {
	local minor="${FERROLB_K8S_VERSION#v1.}"
	local staging="v0.${minor}"
	mkdir -p "$1" && cd "$1" || return 1
	log "resolving k8s.io/kubernetes@$FERROLB_K8S_VERSION"
	local gomod; gomod="$(go mod download -json "k8s.io/kubernetes@$FERROLB_K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
	[[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$FERROLB_K8S_VERSION"
	{
		echo "module ferrolb.test/k8stools"
		echo
		echo "go 1.26.0"
		echo
		echo "require k8s.io/kubernetes $FERROLB_K8S_VERSION"
		echo
		# Every staging module is listed by k8s.io/kubernetes at v0.0.0.
		awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$2=="v0.0.0"{print "replace " $1 " => " $1 " '"$staging"'"}' "$gomod"
	} > go.mod
}

_build_kubernetes() {
	local out="$1" work="$2"
	_k8s_wrapper_module "$work/k8s" || return 1
	cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
	GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
	local ldflags; ldflags="$(_k8s_ldflags)"
	for cmd in "${@:3}"; do
		log "building $cmd (first run only; several minutes, seconds once the Go cache is warm)"
		GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd" || return 1
	done
}

# The version stamp Kubernetes' own build sets (hack/lib/version.sh there): without it every binary reports
# v0.0.0-master, which `kubectl version`, helm's kubeVersion checks and some clients reject. -X applies at
# link time, so re-stamping relinks without recompiling.
_k8s_ldflags() {
	local minor="${FERROLB_K8S_VERSION#v1.}"; minor="${minor%%.*}"
	local flags="-s -w" pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$FERROLB_K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$flags"
}

# _tool_current NAME: the tool exists and, if it is a Kubernetes binary we built, was built with the version
# stamp (NAME.version beside it, written after the build; caches from before the stamp are rebuilt, which
# only relinks).
_tool_current() {
	local path; path="$(tool_path "$1")"
	[[ -x "$path" ]] || return 1
	[[ "$1" == kube* && "$path" == "$FERROLB_CACHE"/* ]] || return 0
	[[ "$(cat "$path.version" 2>/dev/null)" == "$FERROLB_K8S_VERSION" ]]
}

# ensure_tools builds whatever is missing from the cache; a no-op when everything is there.
ensure_tools() {
	local cache_bin="$FERROLB_CACHE/k8s-$FERROLB_K8S_VERSION-etcd-$FERROLB_ETCD_VERSION/bin"
	local need=()
	# FERROLB_TOOLS narrows the set (e.g. "kubectl" on a machine without one).
	for t in ${FERROLB_TOOLS:-etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet}; do
		_tool_current "$t" || need+=("$t")
	done
	[[ ${#need[@]} -eq 0 ]] && return 0
	command -v go >/dev/null || die "go is needed to build ${need[*]} (or set KUBEBUILDER_ASSETS)"
	mkdir -p "$cache_bin"
	local work; work="$(mktemp -d)"
	# Build into a staging dir and move into place, so an interrupted build never leaves a half binary cached.
	local stage="$work/out"; mkdir -p "$stage"
	if [[ " ${need[*]} " == *" etcd "* ]]; then (_build_etcd "$stage" "$work") || die "building etcd failed"; fi
	local kube=()
	for t in "${need[@]}"; do [[ "$t" == kube* ]] && kube+=("$t"); done
	if [[ ${#kube[@]} -gt 0 ]]; then (_build_kubernetes "$stage" "$work" "${kube[@]}") || die "building kubernetes failed"; fi
	for t in "${need[@]}"; do
		mv -f "$stage/$t" "$cache_bin/$t"
		[[ "$t" == kube* ]] && echo "$FERROLB_K8S_VERSION" >"$cache_bin/$t.version"
	done
	rm -rf "$work"
	log "tools cached in $cache_bin"
}

# e2e_dir prints where the upstream e2e suite's binaries live: e2e.test and agnhost (built by ensure_e2e).
e2e_dir() {
	echo "$FERROLB_CACHE/e2e-$FERROLB_K8S_VERSION"
}

# ensure_e2e builds Kubernetes' own e2e suite (e2e.test) and the agnhost binary its test pods run, from the
# same release and wrapper module as the other tools; a no-op when both are cached. Several minutes.
ensure_e2e() {
	local dir; dir="$(e2e_dir)"
	[[ -x "$dir/e2e.test" && -x "$dir/agnhost" ]] && return 0
	command -v go >/dev/null || die "go is needed to build the e2e suite"
	local work; work="$(mktemp -d)"
	mkdir -p "$work/out"
	(
		_k8s_wrapper_module "$work/k8s" || exit 1
		printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/test/e2e"\n' >tools.go
		GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
		log "building e2e.test $FERROLB_K8S_VERSION (first run only; about 8 minutes)"
		GOFLAGS=-mod=mod go test -c -trimpath -ldflags="$(_k8s_ldflags)" -o "$work/out/e2e.test" \
			k8s.io/kubernetes/test/e2e || exit 1
		log "building agnhost (first run only; about 2 minutes)"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$work/out/agnhost" \
			k8s.io/kubernetes/test/images/agnhost || exit 1
	) || die "building the e2e suite failed"
	mkdir -p "$dir"
	mv -f "$work/out/e2e.test" "$work/out/agnhost" "$dir/"
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
	log "e2e suite cached in $dir"
}

# helm_path prints where the pinned helm lives (built by ensure_helm). FERROLB_HELM names another binary.
helm_path() {
	echo "${FERROLB_HELM:-$FERROLB_CACHE/helm-$FERROLB_HELM_VERSION/bin/helm}"
}

# ensure_helm builds the pinned helm once from the Go module proxy; a no-op when it is cached.
# helm's go.mod has no replace directives, so `go install module@version` builds it as released. The
# ldflags are the ones helm's Makefile sets: the version `helm version` prints, and the Kubernetes version
# `helm template`/`helm lint` assume for .Capabilities (taken from the client-go helm requires).
ensure_helm() {
	local helm; helm="$(helm_path)"
	[[ -x "$helm" ]] && return 0
	[[ -n "${FERROLB_HELM:-}" ]] && die "FERROLB_HELM=$FERROLB_HELM is not an executable"
	command -v go >/dev/null || die "go is needed to build helm $FERROLB_HELM_VERSION (or set FERROLB_HELM)"
	local work; work="$(mktemp -d)"
	local gomod
	gomod="$(cd "$work" && go mod download -json "helm.sh/helm/v3@$FERROLB_HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
	[[ -f "$gomod" ]] || die "could not download helm.sh/helm/v3@$FERROLB_HELM_VERSION"
	local client_go; client_go="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$gomod")" # v0.37.0
	local k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
	local pkg=helm.sh/helm/v3
	local ldflags="-s -w -X $pkg/internal/version.version=$FERROLB_HELM_VERSION -X $pkg/internal/version.gitTreeState=clean"
	ldflags+=" -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
	ldflags+=" -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$k8s_minor"
	log "building helm $FERROLB_HELM_VERSION (first run only; a few minutes)"
	# Build into a staging dir and move into place, so an interrupted build never leaves a half binary cached.
	(cd "$work" && CGO_ENABLED=0 GOBIN="$work/out" go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$FERROLB_HELM_VERSION") ||
		die "building helm failed"
	mkdir -p "$(dirname "$helm")"
	mv -f "$work/out/helm" "$helm"
	rm -rf "$work"
	log "helm cached at $helm"
}

# --- MetalLB, for side-by-side benchmarks only (hack/lab up --lb metallb) ---
# MetalLB's go.mod (v0.15.2) has no replace directives, so `go install module/cmd@version` builds its
# controller and speaker as released, without the wrapper module Kubernetes needs. Its CRDs (config/crd/bases, without the conversion webhook patches) come from the same
# module download. ferrolb never links or ships any of it.
FERROLB_METALLB_VERSION="${FERROLB_METALLB_VERSION:-v0.15.2}"

# metallb_dir prints the cache directory holding bin/{controller,speaker} and crds/.
metallb_dir() {
	echo "$FERROLB_CACHE/metallb-$FERROLB_METALLB_VERSION"
}

# ensure_metallb builds the pinned MetalLB once from the Go module proxy; a no-op when it is cached.
ensure_metallb() {
	local dir; dir="$(metallb_dir)"
	[[ -x "$dir/bin/speaker" && -x "$dir/bin/controller" && -d "$dir/crds" ]] && return 0
	command -v go >/dev/null || die "go is needed to build MetalLB $FERROLB_METALLB_VERSION"
	local work; work="$(mktemp -d)"
	local mod="go.universe.tf/metallb"
	local src
	src="$(cd "$work" && go mod download -json "$mod@$FERROLB_METALLB_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')" ||
		die "could not download $mod@$FERROLB_METALLB_VERSION"
	[[ -d "$src/config/crd/bases" ]] || die "$mod@$FERROLB_METALLB_VERSION has no config/crd/bases"
	log "building MetalLB $FERROLB_METALLB_VERSION (first run only; a few minutes)"
	(cd "$work" && CGO_ENABLED=0 GOBIN="$work/out" go install -trimpath -ldflags '-s -w' \
		"$mod/controller@$FERROLB_METALLB_VERSION" "$mod/speaker@$FERROLB_METALLB_VERSION") ||
		die "building MetalLB failed"
	# Stage, then move into place, so an interrupted build never leaves a half-filled cache.
	mkdir -p "$work/stage/bin" "$work/stage/crds"
	mv "$work/out/controller" "$work/out/speaker" "$work/stage/bin/"
	cp "$src"/config/crd/bases/*.yaml "$work/stage/crds/"
	chmod -R u+w "$work/stage"
	mkdir -p "$(dirname "$dir")"
	rm -rf "$dir" && mv "$work/stage" "$dir"
	chmod -R u+w "$work" && rm -rf "$work"
	log "MetalLB cached in $dir"
}

# --- CoreDNS, the lab's cluster DNS for the upstream e2e suite (hack/lab up --cluster-dns) ---
# The suite reaches Services by name from its pods. CoreDNS's go.mod (v1.15.0) has no replace directives, so
# `go install module@version` builds it as released, with its default plugins.
FERROLB_COREDNS_VERSION="${FERROLB_COREDNS_VERSION:-v1.15.0}"

# coredns_path prints where the cached coredns binary lives.
coredns_path() {
	echo "$FERROLB_CACHE/coredns-$FERROLB_COREDNS_VERSION/coredns"
}

# ensure_coredns builds the pinned CoreDNS once from the Go module proxy; a no-op when it is cached.
ensure_coredns() {
	local bin; bin="$(coredns_path)"
	[[ -x "$bin" ]] && return 0
	command -v go >/dev/null || die "go is needed to build CoreDNS $FERROLB_COREDNS_VERSION"
	local work; work="$(mktemp -d)"
	log "building CoreDNS $FERROLB_COREDNS_VERSION (first run only; a few minutes)"
	(cd "$work" && CGO_ENABLED=0 GOBIN="$work/out" go install -trimpath -ldflags '-s -w' \
		"github.com/coredns/coredns@$FERROLB_COREDNS_VERSION") || die "building CoreDNS failed"
	mkdir -p "$(dirname "$bin")"
	mv -f "$work/out/coredns" "$bin"
	chmod -R u+w "$work" && rm -rf "$work"
	log "CoreDNS cached at $bin"
}
