#include "store/cached_defer_store.h"

namespace prosody::store {

template class CachedDeferStore<DeferredMessage>;
template class CachedDeferStore<DeferredTimer>;

}  // namespace prosody::store
