// Overview: textbook (CLRS) red-black tree, arranged to take exactly the
// decisions Linux's lib/rbtree.c takes, case by case:
//   1. insert: while the parent is red, recolour when the uncle is red,
//      otherwise rotate the node into line with its parent, then rotate the
//      grandparent; the root ends black.
//   2. erase: a node with two children is replaced by its in-order successor,
//      which takes over the erased node's parent, children and colour; the
//      fix-up runs from the successor's old position when the removed colour
//      was black.
#include "server/core/ksm/rbtree.h"

namespace memnode {

static inline bool IsRed(const RbNode* n) { return n != nullptr && n->red; }
static inline bool IsBlack(const RbNode* n) { return n == nullptr || !n->red; }

void RbTree::RotateLeft(RbNode* node) {
  RbNode* right = node->right;
  RbNode* parent = node->parent;
  node->right = right->left;
  if (node->right) node->right->parent = node;
  right->left = node;
  right->parent = parent;
  if (parent) {
    if (node == parent->left)
      parent->left = right;
    else
      parent->right = right;
  } else {
    root_ = right;
  }
  node->parent = right;
}

void RbTree::RotateRight(RbNode* node) {
  RbNode* left = node->left;
  RbNode* parent = node->parent;
  node->left = left->right;
  if (node->left) node->left->parent = node;
  left->right = node;
  left->parent = parent;
  if (parent) {
    if (node == parent->right)
      parent->right = left;
    else
      parent->left = left;
  } else {
    root_ = left;
  }
  node->parent = left;
}

void RbTree::InsertColor(RbNode* node) {
  RbNode* parent;
  while ((parent = node->parent) != nullptr && parent->red) {
    RbNode* gparent = parent->parent;
    if (parent == gparent->left) {
      RbNode* uncle = gparent->right;
      if (IsRed(uncle)) {
        uncle->red = false;
        parent->red = false;
        gparent->red = true;
        node = gparent;
        continue;
      }
      if (parent->right == node) {
        RotateLeft(parent);
        RbNode* tmp = parent;
        parent = node;
        node = tmp;
      }
      parent->red = false;
      gparent->red = true;
      RotateRight(gparent);
    } else {
      RbNode* uncle = gparent->left;
      if (IsRed(uncle)) {
        uncle->red = false;
        parent->red = false;
        gparent->red = true;
        node = gparent;
        continue;
      }
      if (parent->left == node) {
        RotateRight(parent);
        RbNode* tmp = parent;
        parent = node;
        node = tmp;
      }
      parent->red = false;
      gparent->red = true;
      RotateLeft(gparent);
    }
  }
  root_->red = false;
}

void RbTree::EraseColor(RbNode* node, RbNode* parent) {
  while (IsBlack(node) && node != root_) {
    if (parent->left == node) {
      RbNode* other = parent->right;
      if (IsRed(other)) {
        other->red = false;
        parent->red = true;
        RotateLeft(parent);
        other = parent->right;
      }
      if (IsBlack(other->left) && IsBlack(other->right)) {
        other->red = true;
        node = parent;
        parent = node->parent;
      } else {
        if (IsBlack(other->right)) {
          other->left->red = false;
          other->red = true;
          RotateRight(other);
          other = parent->right;
        }
        other->red = parent->red;
        parent->red = false;
        other->right->red = false;
        RotateLeft(parent);
        node = root_;
        break;
      }
    } else {
      RbNode* other = parent->left;
      if (IsRed(other)) {
        other->red = false;
        parent->red = true;
        RotateRight(parent);
        other = parent->left;
      }
      if (IsBlack(other->left) && IsBlack(other->right)) {
        other->red = true;
        node = parent;
        parent = node->parent;
      } else {
        if (IsBlack(other->left)) {
          other->right->red = false;
          other->red = true;
          RotateLeft(other);
          other = parent->left;
        }
        other->red = parent->red;
        parent->red = false;
        other->left->red = false;
        RotateRight(parent);
        node = root_;
        break;
      }
    }
  }
  if (node) node->red = false;
}

void RbTree::Erase(RbNode* node) {
  RbNode* child;
  RbNode* parent;
  bool red;
  if (!node->left) {
    child = node->right;
  } else if (!node->right) {
    child = node->left;
  } else {
    RbNode* old = node;
    node = node->right;
    while (node->left) node = node->left;  // successor
    if (old->parent) {
      if (old->parent->left == old)
        old->parent->left = node;
      else
        old->parent->right = node;
    } else {
      root_ = node;
    }
    child = node->right;
    parent = node->parent;
    red = node->red;
    if (parent == old) {
      parent = node;
    } else {
      if (child) child->parent = parent;
      parent->left = child;
      node->right = old->right;
      old->right->parent = node;
    }
    node->parent = old->parent;
    node->red = old->red;
    node->left = old->left;
    old->left->parent = node;
    if (!red) EraseColor(child, parent);
    return;
  }
  parent = node->parent;
  red = node->red;
  if (child) child->parent = parent;
  if (parent) {
    if (parent->left == node)
      parent->left = child;
    else
      parent->right = child;
  } else {
    root_ = child;
  }
  if (!red) EraseColor(child, parent);
}

RbNode* RbTree::First() const {
  RbNode* n = root_;
  if (!n) return nullptr;
  while (n->left) n = n->left;
  return n;
}

RbNode* RbTree::Next(RbNode* node) {
  if (node->right) {
    node = node->right;
    while (node->left) node = node->left;
    return node;
  }
  RbNode* parent;
  while ((parent = node->parent) != nullptr && node == parent->right) node = parent;
  return parent;
}

int RbTree::Depth(const RbNode* node) {
  int d = 0;
  while (node->parent) {
    node = node->parent;
    ++d;
  }
  return d;
}

}  // namespace memnode
