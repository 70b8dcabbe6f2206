# shellcheck shell=bash
# A lab node's own container runtime and kubelet (sourced by hack/lab, which sets DIR, CP, RUN, LAB_ID and
# the address helpers). Each node runs one containerd and one kubelet, both started inside the node's network
# namespace with `nsenter --net` (not `ip netns exec`: its private mount namespace would hide the kubelet's
# Secret and emptyDir mounts from containerd). A containerd shared between nodes cannot work: hostNetwork pods
# and the CNI bridge land in containerd's own namespace, and each kubelet would kill the others' pods.
#
# Per node: config, images, kubelet and pod state under DIR/nodes/node-N; sockets and runtime state (what a
# real node keeps on tmpfs and loses when it dies) under RUN/node-N; a cgroup root flb<ID>-node-N in every
# cgroup v1 hierarchy. Settings this VM needs (measured): containerd's restrict_oom_score_adj (no
# CAP_SYS_RESOURCE, so runc cannot write oom_score_adj -998), the kubelet's failCgroupV1: false and cgroupfs
# driver.

node_dir() { echo "$DIR/nodes/node-$1"; }
node_run() { echo "$RUN/node-$1"; }
node_cgroup() { echo "flb${LAB_ID}-node-$1"; }
node_socket() { echo "$(node_run "$1")/containerd.sock"; }
ctr_node() { local i="$1"; shift; ctr --address "$(node_socket "$i")" --namespace k8s.io "$@"; }

# The cgroup hierarchies (v1, plus the v2 one a hybrid host mounts), as directories under /sys/fs/cgroup.
cgroup_roots() {
	awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | grep '^/sys/fs/cgroup/'
}

node_cgroup_create() { # index
	local name root; name="$(node_cgroup "$1")"
	for root in $(cgroup_roots); do
		mkdir -p "$root/$name"
		if [[ -f "$root/cpuset.cpus" ]]; then
			# A new cpuset cgroup starts empty, and nothing can join it until it has CPUs and memory nodes.
			cat "$root/cpuset.cpus" >"$root/$name/cpuset.cpus"
			cat "$root/cpuset.mems" >"$root/$name/cpuset.mems"
		fi
	done
}

# Kills every process in the node's cgroups (its pods' containers), then removes the cgroups.
node_cgroup_remove() { # index
	local name root pids; name="$(node_cgroup "$1")"
	local procs="/sys/fs/cgroup/pids/$name"
	[[ -d "$procs" ]] || procs="$(cgroup_roots | head -n 1)/$name"
	# Already gone (a node powered off twice, a down after kill-node): nothing to kill.
	[[ -d "$procs" ]] || return 0
	for _ in $(seq 50); do
		pids="$(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)"
		[[ -z "$pids" ]] && break
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.1
	done
	for root in $(cgroup_roots); do
		[[ -d "$root/$name" ]] || continue
		find "$root/$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	return 0
}

# Unmounts everything mounted below the node's directories (container root filesystems, Secret and
# projected volumes, network namespace files), deepest first.
node_unmount() { # index
	local dirs=("$(node_dir "$1")" "$(node_run "$1")") d m
	for d in "${dirs[@]}"; do
		awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
	done
}

node_write_config() { # index
	local i="$1" d r; d="$(node_dir "$i")"; r="$(node_run "$i")"
	mkdir -p "$d/cni" "$d/cni-ipam" "$d/kubelet" "$d/pki" "$d/pod-logs" "$d/containerd" "$r"
	cat >"$d/containerd.toml" <<TOML
version = 2
root = "$d/containerd"
state = "$r/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$r/containerd.sock"
[ttrpc]
  address = "$r/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # The pause image is built here (hack/lab.d/pod-server.rs --pause) and imported; nothing is pulled.
  sandbox_image = "$LAB_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$r/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
    max_conf_num = 1
TOML
	# The pod network: the bridge cbr0 (created by hack/lab with the gateway addresses) on the node's pod
	# ranges; nodes route each other's ranges (host-gateway style), so nothing is masqueraded.
	local v4 v6 base4
	v4="$(pod_cidr4 "$i")"; v6="$(pod_cidr6 "$i")"; base4="${v4%/*}"
	cat >"$d/cni/10-lab.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [{
    "type": "bridge", "bridge": "cbr0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$d/cni-ipam",
      "ranges": [
        [{"subnet": "$v4", "rangeStart": "${base4%.*}.$((${base4##*.} + 10))", "gateway": "$(pod_gw4 "$i")"}],
        [{"subnet": "$v6", "rangeStart": "${v6%::*}::10", "gateway": "$(pod_gw6 "$i")"}]
      ],
      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    }
  }]
}
JSON
	# The kubelet: its own token (user system:node:node-N), serving certificate self-signed into pki/.
	sed "s|^    token: .*|    token: $(cat "$CP/pki/node-node-$i.token")|" "$CP/kubeconfig" >"$d/kubeconfig"
	# Pods' DNS: with --cluster-dns, the lab's CoreDNS on the bridge (cluster.local only); otherwise nothing
	# answers inside the lab. No query may leave it either way.
	printf 'nameserver 127.0.0.1\n' >"$d/resolv.conf"
	local cluster_dns=""
	[[ "${LAB_CLUSTER_DNS:-0}" == 1 ]] && cluster_dns="clusterDNS: [$LAN4.1]"
	cat >"$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This VM has cgroup v1, which kubelet 1.35+ refuses unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup "$i")
containerRuntimeEndpoint: unix://$r/containerd.sock
podLogsDir: $d/pod-logs
resolvConf: $d/resolv.conf
clusterDomain: cluster.local
$cluster_dns
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $CP/pki/ca.crt}
authorization: {mode: AlwaysAllow}
failSwapOn: false
# The host's disk is shared by every node: never evict or collect images over it.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
shutdownGracePeriod: 0s
maxPods: 60
YAML
}

node_start_containerd() { # index
	local i="$1"
	spawn "$DIR/containerd-$i.pid" "$DIR/logs/containerd-node-$i.log" "" \
		nsenter --net="/run/netns/$(ns "node-$i")" containerd --config "$(node_dir "$i")/containerd.toml"
}

node_wait_containerd() { # index
	local i="$1" deadline=$((SECONDS + 30))
	until ctr --address "$(node_socket "$i")" version >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "containerd on node-$i did not start; see $DIR/logs/containerd-node-$i.log"
		running "$DIR/containerd-$i.pid" || die "containerd on node-$i exited; see $DIR/logs/containerd-node-$i.log"
		sleep 0.1
	done
}

# node_import_images INDEX ARCHIVE...: loads OCI archives into the node's containerd (the CRI namespace).
node_import_images() {
	local i="$1" archive; shift
	for archive in "$@"; do
		ctr_node "$i" images import "$archive" >/dev/null ||
			die "importing $archive into node-$i's containerd failed"
	done
}

node_start_kubelet() { # index
	local i="$1" d; d="$(node_dir "$i")"
	spawn "$DIR/kubelet-$i.pid" "$DIR/logs/kubelet-node-$i.log" "" \
		nsenter --net="/run/netns/$(ns "node-$i")" "$(tool_path kubelet)" --config "$d/kubelet.yaml" \
		--kubeconfig "$d/kubeconfig" --root-dir "$d/kubelet" --cert-dir "$d/pki" --hostname-override "node-$i" \
		--node-ip "$(node_ip4 "$i"),$(node_ip6 "$i")" --node-labels ferrolb.io/lab=true --v 1
}

# node_power_off INDEX: everything the node runs dies at once, as in a power cut: kubelet, containerd and
# its shims, every container; its runtime state (RUN/node-N) goes, as tmpfs would. Images, the kubelet's
# and containerd's persistent state stay for node_power_on.
node_power_off() {
	local i="$1" f
	for f in "$DIR/kubelet-$i.pid" "$DIR/containerd-$i.pid"; do
		[[ -f "$f" ]] || continue
		kill -KILL "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	node_cgroup_remove "$i"
	local netns; netns="$(ns "node-$i")"
	if netns_exists "$netns"; then
		# Shims and hostNetwork containers live in the node's namespace; they go too.
		ip netns pids "$netns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	fi
	node_unmount "$i"
	# Shims listen on /run/containerd/s/<sha256 of "ADDRESS/NAMESPACE/ID"> whatever containerd's state
	# directory is; a killed shim leaves its socket there.
	local task
	for task in "$(node_run "$i")"/containerd/io.containerd.runtime.v2.task/k8s.io/*; do
		[[ -d "$task" ]] || continue
		rm -f "/run/containerd/s/$(printf '%s' "$(node_socket "$i")/k8s.io/$(basename "$task")" | sha256sum | cut -d' ' -f1)"
	done
	rm -rf "$(node_run "$i")"
	find /var/log/containers -maxdepth 1 -lname "$(node_dir "$i")/*" -delete 2>/dev/null || true
	return 0
}

# node_forget INDEX: what the node's runtime left outside the lab's directories, once it is off for good:
# libcni's cached results (always under /var/lib/cni) of the node's sandboxes.
node_forget() {
	local sandbox id
	for sandbox in "$(node_dir "$1")"/containerd/io.containerd.grpc.v1.cri/sandboxes/*; do
		[[ -d "$sandbox" ]] || continue
		id="$(basename "$sandbox")"
		rm -f /var/lib/cni/results/*-"$id"-*
	done
}

node_power_on() { # index
	local i="$1"
	mkdir -p "$(node_run "$i")"
	node_cgroup_create "$i"
	node_start_containerd "$i"
	node_wait_containerd "$i"
	node_start_kubelet "$i"
}
