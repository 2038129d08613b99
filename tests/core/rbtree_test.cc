// The red-black tree keeps its properties and order under random inserts and
// erases (the KSM trees rely on it).
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/ksm/rbtree.h"

namespace memnode {
namespace {

struct Item {
  RbNode rb;  // first member: the node's address is the item's
  int key;
};

int BlackHeight(const RbNode* n, bool* ok) {
  if (!n) return 1;
  if (n->red && ((n->left && n->left->red) || (n->right && n->right->red))) *ok = false;
  if (n->left && n->left->parent != n) *ok = false;
  if (n->right && n->right->parent != n) *ok = false;
  int l = BlackHeight(n->left, ok), r = BlackHeight(n->right, ok);
  if (l != r) *ok = false;
  return l + (n->red ? 0 : 1);
}

void Insert(RbTree& t, Item* it) {
  RbNode** link = t.root_link();
  RbNode* parent = nullptr;
  while (*link) {
    parent = *link;
    link = reinterpret_cast<Item*>(parent)->key > it->key ? &parent->left : &parent->right;
  }
  RbTree::Link(&it->rb, parent, link);
  t.InsertColor(&it->rb);
}

TEST(RbTreeTest, RandomInsertEraseKeepsProperties) {
  std::mt19937 rng(5);
  RbTree t;
  std::vector<Item> items(2000);
  std::set<int> live;
  for (int i = 0; i < 2000; ++i) items[i].key = i;
  for (int step = 0; step < 20000; ++step) {
    int k = rng() % 2000;
    if (live.count(k)) {
      t.Erase(&items[k].rb);
      live.erase(k);
    } else {
      Insert(t, &items[k]);
      live.insert(k);
    }
    if (step % 97 == 0) {
      bool ok = true;
      BlackHeight(t.root(), &ok);
      ASSERT_TRUE(ok) << "step " << step;
      ASSERT_TRUE(!t.root() || !t.root()->red);
      std::vector<int> keys;
      for (RbNode* n = t.First(); n; n = RbTree::Next(n))
        keys.push_back(reinterpret_cast<Item*>(n)->key);
      ASSERT_EQ(keys, std::vector<int>(live.begin(), live.end()));
    }
  }
}

TEST(RbTreeTest, ShapeOfSmallTreeIsTheClassicOne) {
  // Inserting 1..7 in order (worked by hand with the CLRS cases that
  // lib/rbtree.c implements): 2(1, 4(3, 6(5, 7))).
  RbTree t;
  std::vector<Item> items(8);
  for (int i = 1; i <= 7; ++i) {
    items[i].key = i;
    Insert(t, &items[i]);
  }
  auto key = [](RbNode* n) { return reinterpret_cast<Item*>(n)->key; };
  EXPECT_EQ(key(t.root()), 2);
  EXPECT_EQ(key(t.root()->left), 1);
  EXPECT_EQ(key(t.root()->right), 4);
  EXPECT_EQ(key(t.root()->right->left), 3);
  EXPECT_EQ(key(t.root()->right->right), 6);
  EXPECT_EQ(RbTree::Depth(&items[7].rb), 3);
}

}  // namespace
}  // namespace memnode
