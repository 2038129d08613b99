// An intrusive red-black tree with the same balancing decisions as Linux's
// lib/rbtree.c of the 2.6.33 era (classic insert fix-up; erase replaces a node
// with two children by its in-order successor), so that a KSM tree built by
// the same sequence of links and erases has the kernel's shape: which stale
// stable nodes a search touches depends on that shape.
// Like the kernel's API, the caller descends and links (Link), then calls
// InsertColor; comparison is the caller's business.
// Thread safety: not thread-safe; used under the owning machine's lock.
#ifndef MEMNODE_SERVER_CORE_KSM_RBTREE_H_
#define MEMNODE_SERVER_CORE_KSM_RBTREE_H_

namespace memnode {

struct RbNode {
  RbNode* parent = nullptr;
  RbNode* left = nullptr;
  RbNode* right = nullptr;
  bool red = false;
};

class RbTree {
 public:
  RbNode* root() const { return root_; }
  bool empty() const { return root_ == nullptr; }
  // Forgets every node (the kernel's "root = RB_ROOT" reset of the unstable
  // tree); nodes are not touched.
  void Reset() { root_ = nullptr; }

  // Places `node` as a red leaf at *link under `parent` (link points at
  // parent->left, parent->right, or is root_link() when parent is null).
  static void Link(RbNode* node, RbNode* parent, RbNode** link) {
    node->parent = parent;
    node->left = node->right = nullptr;
    node->red = true;
    *link = node;
  }
  RbNode** root_link() { return &root_; }

  // Restores the red-black properties after Link.
  void InsertColor(RbNode* node);
  // Unlinks `node` and rebalances.
  void Erase(RbNode* node);

  RbNode* First() const;
  static RbNode* Next(RbNode* node);
  static int Depth(const RbNode* node);

 private:
  void RotateLeft(RbNode* node);
  void RotateRight(RbNode* node);
  void EraseColor(RbNode* node, RbNode* parent);
  RbNode* root_ = nullptr;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_RBTREE_H_
