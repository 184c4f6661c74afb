#include "store/memory/memory_defer_store.h"

namespace prosody::store {

template class MemoryDeferStore<DeferredMessage>;
template class MemoryDeferStore<DeferredTimer>;

}  // namespace prosody::store
