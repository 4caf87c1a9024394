# Writes the manifests of a one-disk VM whose volume "disk0" lives on claim
# src-pvc (hostPath SRC) and may move to claim dst-pvc (hostPath DST):
#   k8s_world DIR SRC DST SIZE_MIB QMP_ADDR
# DIR/base.yaml: KubeVirt CR, PVs, PVCs, the VM on src-pvc and its VMI
# (annotated with QMP_ADDR); DIR/update.yaml: the VM on dst-pvc with
# updateVolumesStrategy: Migration; DIR/original.yaml: the VM as in base.
k8s_world() {
    local dir=$1 src=$2 dst=$3 mib=$4 qmp=$5
    cat >"$dir/base.yaml" <<YAML
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    vmRolloutStrategy: LiveUpdate
  workloadUpdateStrategy:
    workloadUpdateMethods: [LiveMigrate]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: src-pv}
spec:
  capacity: {storage: ${mib}Mi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: "$src"}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: dst-pv}
spec:
  capacity: {storage: ${mib}Mi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: "$dst"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: src-pvc, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  volumeMode: Filesystem
  resources: {requests: {storage: ${mib}Mi}}
  volumeName: src-pv
status:
  phase: Bound
  capacity: {storage: ${mib}Mi}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: dst-pvc, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  volumeMode: Filesystem
  resources: {requests: {storage: ${mib}Mi}}
  volumeName: dst-pv
status:
  phase: Bound
  capacity: {storage: ${mib}Mi}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: vm1
  namespace: default
  annotations: {volmig.io/qmp: "$qmp"}
spec:
  domain:
    devices:
      disks:
      - {name: disk0, disk: {bus: virtio}}
  volumes:
  - {name: disk0, persistentVolumeClaim: {claimName: src-pvc}}
status:
  phase: Running
  volumeStatus:
  - name: disk0
    persistentVolumeClaimInfo: {claimName: src-pvc, accessModes: [ReadWriteOnce]}
YAML
    vm() { # CLAIM [STRATEGY-LINE]
        cat <<YAML
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm1, namespace: default}
spec:
$2
  runStrategy: Always
  template:
    spec:
      domain:
        devices:
          disks:
          - {name: disk0, disk: {bus: virtio}}
      volumes:
      - {name: disk0, persistentVolumeClaim: {claimName: $1}}
YAML
    }
    vm src-pvc "" >>"$dir/base.yaml"
    vm src-pvc "" >"$dir/original.yaml"
    vm dst-pvc "  updateVolumesStrategy: Migration" >"$dir/update.yaml"
}
