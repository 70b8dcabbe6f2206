# shellcheck shell=bash
# The lab's BGP part (`hack/lab up --bgp`), sourced by hack/lab: a router namespace on the LAN running FRR
# (zebra, bgpd with ECMP, bfdd), the client moved behind the router on a segment of its own, and the BGPPeer
# (and BFDProfile) objects that peer every node with the router. The client then reaches Service IPs only
# through routes the router learned over BGP.
#
#   LAN 198.51.100.0/24, 2001:db8:100::/64: nodes .11-.13, the router .254 / ::fe (AS 64513; nodes AS 64512)
#   client segment 198.51.100.128/28 (a slice of the LAN's range that the lab leaves unused; 203.0.113.0/24
#   holds the ClusterIPs) and 2001:db8:400::/64: the router .129 / ::1, the client .130 / ::2
#   BGP pools: 192.0.2.224/27 and 2001:db8:300::/116, on no segment (the lab keeps them free)
# Uses hack/lab's helpers (ns, spawn, wait_until, attach, kc) and its variables (DIR, LAB_ID, NODES, LAN4/6).

ROUTER4="$LAN4.254"
ROUTER6="$LAN6::fe"
OUT4_NET="$LAN4.128/28"
OUT4_ROUTER="$LAN4.129"
OUT4_CLIENT="$LAN4.130"
OUT6=2001:db8:400
ROUTER_ASN=64513
NODE_ASN=64512

bgp_enabled() { [[ "${LAB_BGP:-0}" == 1 ]]; }

# FRR's path space: its vty sockets and pid files live in /var/run/frr/<this>.
router_space() { echo "flb${LAB_ID}r"; }

# vtysh against the lab's router: router_vtysh 'show bgp summary json'.
router_vtysh() { vtysh -N "$(router_space)" -c "$1"; }

# The router's interfaces, and the client on its own segment behind the router.
bgp_network() {
	local router; router="$(ns router)"
	attach "$router" "flb${LAB_ID}r" "$ROUTER4" "$ROUTER6"
	local client; client="$(ns client)"
	netns_exists "$client" || ip netns add "$client"
	ip netns exec "$router" ip link show eth1 >/dev/null 2>&1 ||
		ip netns exec "$router" ip link add eth1 type veth peer name eth0 netns "$client"
	# The router routes only what it is connected to and what BGP tells it: no default towards the host.
	ip netns exec "$router" sh -c "
		ip route del default 2>/dev/null || true
		ip -6 route del default 2>/dev/null || true
		ip addr replace $OUT4_ROUTER/28 dev eth1
		ip addr replace $OUT6::1/64 dev eth1 nodad
		ip link set eth1 up
		sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
		# ECMP spreads flows by ports too, not just by addresses (one client would use one next hop).
		sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
	"
	ip netns exec "$client" sh -c "
		ip link set lo up
		ip addr replace $OUT4_CLIENT/28 dev eth0
		ip addr replace $OUT6::2/64 dev eth0 nodad
		ip link set eth0 up
		ip route replace default via $OUT4_ROUTER dev eth0
		ip -6 route replace default via $OUT6::1 dev eth0
	"
}

# Node i answers the client through the router: the client's slice of the LAN's range is more specific than
# the LAN itself, and its IPv6 segment would otherwise follow the default route to the host.
bgp_node_routes() { # index
	bgp_enabled || return 0
	local netns; netns="$(ns "node-$1")"
	ip netns exec "$netns" ip route replace "$OUT4_NET" via "$ROUTER4"
	ip netns exec "$netns" ip -6 route replace "$OUT6::/64" via "$ROUTER6"
	# A BGP pool address kube-proxy has no rule for (yet) is refused here, not sent on to the host.
	ip netns exec "$netns" ip route replace unreachable 192.0.2.224/27
	ip netns exec "$netns" ip -6 route replace unreachable 2001:db8:300::/116
}

# The router's FRR configuration: every node a passive neighbour over IPv4 and IPv6 (the speakers connect),
# ECMP over up to 16 next hops, and with ferrolb BFD on every session (MetalLB's native mode has none).
router_configs() {
	local d="$DIR/router" i
	mkdir -p "$d"
	printf 'hostname router\n' >"$d/zebra.conf"
	{
		printf 'frr defaults datacenter\nhostname router\nrouter bgp %s\n' "$ROUTER_ASN"
		printf ' bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n' "$ROUTER4"
		printf ' bgp bestpath as-path multipath-relax\n'
		local group
		for group in nodes nodes6; do
			printf ' neighbor %s peer-group\n neighbor %s remote-as %s\n neighbor %s passive\n' \
				"$group" "$group" "$NODE_ASN" "$group"
			if [[ "${LAB_LB:-ferrolb}" == ferrolb ]]; then
				printf ' neighbor %s bfd\n neighbor %s bfd profile lab\n' "$group" "$group"
			fi
		done
		for i in $(seq 1 "$NODES"); do
			printf ' neighbor %s peer-group nodes\n neighbor %s peer-group nodes6\n' "$(node_ip4 "$i")" "$(node_ip6 "$i")"
		done
		local af
		for af in ipv4 ipv6; do
			printf ' address-family %s unicast\n  neighbor nodes activate\n  neighbor nodes6 activate\n' "$af"
			printf '  maximum-paths 16\n exit-address-family\n'
		done
	} >"$d/bgpd.conf"
	# The router accepts packets as fast as a node's profile sends them and sends its own every 50 ms.
	printf 'bfd\n profile lab\n  receive-interval 10\n  transmit-interval 50\n  detect-multiplier 5\n !\n!\n' >"$d/bfdd.conf"
	chown -R frr:frr "$d"
}

router_running() { running "$DIR/router-bgpd.pid"; }

bgp_start_router() {
	local space; space="$(router_space)"
	local run="/var/run/frr/$space" d="$DIR/router" daemon
	router_configs
	mkdir -p "$run"
	chown frr:frr "$run"
	for daemon in zebra bgpd bfdd; do
		rm -f "$run/$daemon.vty"
		# The daemons read their configuration as user frr, which may not enter the lab's directory (mktemp -d
		# makes it 0700); they get a copy in their run directory ($DIR/router keeps the one to read).
		install -o frr -g frr -m 0640 "$d/$daemon.conf" "$run/$daemon.conf"
		spawn "$DIR/router-$daemon.pid" "$DIR/logs/router-$daemon.log" "$(ns router)" \
			"/usr/lib/frr/$daemon" -N "$space" -f "$run/$daemon.conf" -i "$run/$daemon.pid" \
			--log "file:$DIR/logs/router-$daemon.frr.log"
		wait_until "the router's $daemon" 30 test -S "$run/$daemon.vty"
	done
	wait_until "the router's zebra to see eth0 up" 30 router_interface_up
}

router_interface_up() { router_vtysh 'show interface eth0' | grep -q 'is up'; }

# The objects that peer every node with the router: ferrolb's BGPPeer naming the BFDProfile `lab` (the
# default timers), or MetalLB's BGPPeer (no BFD in its native mode).
bgp_objects() {
	if [[ "${LAB_LB:-ferrolb}" == metallb ]]; then
		kc apply -f - >/dev/null <<YAML
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: $NODE_ASN, peerASN: $ROUTER_ASN, peerAddress: $ROUTER4}
YAML
		return
	fi
	kc apply -f - >/dev/null <<YAML
apiVersion: ferrolb.io/v1alpha1
kind: BFDProfile
metadata: {name: lab}
spec: {}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: $NODE_ASN, peerASN: $ROUTER_ASN, peerAddress: $ROUTER4, bfdProfile: lab}
YAML
}

bgp_down() {
	rm -rf "/var/run/frr/$(router_space)"
}
