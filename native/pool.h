// Free-list pool for fixed-size objects (connections, requests): objects are
// carved from slabs and recycled, so accepting a connection or parsing a
// request does not touch malloc in the steady state.
#pragma once

#include <cstdlib>
#include <new>
#include <vector>

namespace feersum {

template <typename T, size_t kPerSlab = 64>
class Pool {
 public:
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    for (void* slab : slabs_) std::free(slab);
  }

  // Returns raw, uninitialised storage for a T (constructed by the caller
  // with placement new) or nullptr when memory is exhausted.
  void* allocate() {
    if (!free_ && !grow()) return nullptr;
    FreeNode* n = free_;
    free_ = n->next;
    ++live_;
    return n;
  }

  void release(void* p) {
    FreeNode* n = static_cast<FreeNode*>(p);
    n->next = free_;
    free_ = n;
    --live_;
  }

  size_t live() const { return live_; }

 private:
  struct FreeNode {
    FreeNode* next;
  };
  union Slot {
    FreeNode node;
    alignas(T) unsigned char storage[sizeof(T)];
  };

  bool grow() {
    Slot* slab = static_cast<Slot*>(std::malloc(sizeof(Slot) * kPerSlab));
    if (!slab) return false;
    slabs_.push_back(slab);
    for (size_t i = kPerSlab; i-- > 0;) {
      slab[i].node.next = free_;
      free_ = &slab[i].node;
    }
    return true;
  }

  FreeNode* free_ = nullptr;
  size_t live_ = 0;
  std::vector<void*> slabs_;
};

}  // namespace feersum
