# shellcheck shell=bash
# Building OCI images with no registry: a root filesystem assembled from files we have (a binary, Debian's
# packages unpacked with dpkg-deb), turned into an image by buildah from a Containerfile that starts
# `FROM scratch`, and written as an OCI archive (`ctr images import`, `podman load`, `skopeo copy` read it).
# Sourced by hack/image and hack/lab, after hack/lib/tools.sh.

# need_image_tools installs buildah (and dpkg-dev's tools are part of dpkg) when missing.
need_image_tools() {
	command -v buildah >/dev/null && return 0
	[[ $EUID -eq 0 ]] || die "buildah is needed (apt-get install buildah)"
	log "installing: buildah"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
}

# debian_rootfs DIR PACKAGE...: DIR gets PACKAGE and everything it depends on (no recommends), unpacked from
# Debian's .debs, without documentation, manual pages or locales. The result is cached by the exact package
# versions under $FERROLB_CACHE/debian-rootfs/, so a warm run reads no package list and downloads nothing.
debian_rootfs() {
	local dir="$1"; shift
	local packages
	packages="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^ ' | grep -v '^<' | sort -u)"
	[[ -n "$packages" ]] || die "apt-cache knows none of: $* (run apt-get update)"
	local pinned=() p version
	for p in $packages; do
		version="$(apt-cache policy "$p" | awk '/Candidate:/{print $2}')"
		[[ -n "$version" && "$version" != "(none)" ]] || die "no installable version of $p"
		pinned+=("$p=$version")
	done
	local key; key="$(printf '%s\n' "${pinned[@]}" | sha256sum | cut -c1-16)"
	local cached="$FERROLB_CACHE/debian-rootfs/$key"
	if [[ ! -f "$cached/.complete" ]]; then
		local work; work="$(mktemp -d)"
		log "downloading ${#pinned[@]} Debian packages for the image: ${pinned[*]}"
		(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "${pinned[@]}" >/dev/null) || die "apt-get download failed"
		mkdir -p "$work/rootfs"
		local deb
		for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/rootfs"; done
		rm -rf "$work/rootfs/usr/share/doc" "$work/rootfs/usr/share/man" "$work/rootfs/usr/share/info" \
			"$work/rootfs/usr/share/locale" "$work/rootfs/usr/share/lintian" "$work/rootfs/usr/share/bug" \
			"$work/rootfs/usr/lib/x86_64-linux-gnu/gconv"
		printf '%s\n' "${pinned[@]}" >"$work/rootfs/.packages"
		mkdir -p "$(dirname "$cached")"
		rm -rf "$cached" && mv "$work/rootfs" "$cached" && touch "$cached/.complete"
		rm -rf "$work"
	fi
	cp -a "$cached/." "$dir/"
	rm -f "$dir/.complete"
}

# image_from_rootfs CONTAINERFILE ROOTFS_DIR NAME ARCHIVE: builds NAME from CONTAINERFILE, whose context
# holds rootfs.tar (ROOTFS_DIR packed, owned by root), and writes ARCHIVE (OCI, one image named NAME).
# Prints the image's config digest (its ID), which changes with every build.
image_from_rootfs() {
	local containerfile="$1" rootfs="$2" name="$3" archive="$4"
	need_image_tools
	local work; work="$(mktemp -d)"
	mkdir -p "$work/context"
	tar -C "$rootfs" --numeric-owner --owner 0 --group 0 -cf "$work/context/rootfs.tar" .
	# A private store, so nothing is left in root's containers-storage and builds never meet.
	local store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
	buildah "${store[@]}" bud --quiet --layers=false -f "$containerfile" -t "$name" "$work/context" >/dev/null ||
		{ rm -rf "$work"; die "buildah bud -f $containerfile failed"; }
	local id; id="$(buildah "${store[@]}" images --no-trunc --format '{{.ID}}' "$name")"
	# An OCI layout first, so index.json can also carry containerd's name annotation: `ctr images import`
	# names an image from io.containerd.image.name, podman and skopeo from org.opencontainers.image.ref.name.
	buildah "${store[@]}" push --quiet "$name" "oci:$work/layout:$name" >/dev/null ||
		{ rm -rf "$work"; die "buildah push failed"; }
	python3 - "$work/layout/index.json" "$name" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for manifest in index["manifests"]:
    manifest.setdefault("annotations", {})["io.containerd.image.name"] = name
json.dump(index, open(path, "w"))
PY
	mkdir -p "$(dirname "$archive")"
	tar -C "$work/layout" -cf "$archive.tmp" . && mv -f "$archive.tmp" "$archive"
	buildah "${store[@]}" rmi --all >/dev/null 2>&1 || true
	# vfs layers can hold read-only directories; make them removable.
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
	echo "${id#sha256:}"
}
