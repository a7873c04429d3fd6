/* Intrusive doubly-linked lists: NULL-terminated, over any struct with `prev`
 * and `next` pointers to its own type, reached through a head pointer (lists)
 * or a head and a tail pointer (queues). Unlinking is O(1) and needs no walk.
 * Macros rather than functions so each list keeps its element type without
 * casts or container_of (BSD sys/queue.h does the same); every argument but
 * the element is evaluated more than once, so pass plain lvalues. */
#ifndef OT_CORE_LIST_H
#define OT_CORE_LIST_H

/* Inserts n before *head. */
#define OT_LIST_PUSH_FRONT(head, n)                                                                              \
    do {                                                                                                         \
        (n)->prev = NULL;                                                                                        \
        (n)->next = *(head);                                                                                     \
        if (*(head))                                                                                             \
            (*(head))->prev = (n);                                                                               \
        *(head) = (n);                                                                                           \
    } while (0)

/* Removes n from the list at *head; an element in no list is left alone. */
#define OT_LIST_UNLINK(head, n)                                                                                  \
    do {                                                                                                         \
        if ((n)->prev)                                                                                           \
            (n)->prev->next = (n)->next;                                                                         \
        else if (*(head) == (n))                                                                                 \
            *(head) = (n)->next;                                                                                 \
        if ((n)->next)                                                                                           \
            (n)->next->prev = (n)->prev;                                                                         \
        (n)->prev = (n)->next = NULL;                                                                            \
    } while (0)

/* Appends n after *tail. */
#define OT_QUEUE_PUSH_BACK(head, tail, n)                                                                        \
    do {                                                                                                         \
        (n)->next = NULL;                                                                                        \
        (n)->prev = *(tail);                                                                                     \
        if (*(tail))                                                                                             \
            (*(tail))->next = (n);                                                                               \
        else                                                                                                     \
            *(head) = (n);                                                                                       \
        *(tail) = (n);                                                                                           \
    } while (0)

/* Removes n, which must be in the queue. */
#define OT_QUEUE_UNLINK(head, tail, n)                                                                           \
    do {                                                                                                         \
        if ((n)->prev)                                                                                           \
            (n)->prev->next = (n)->next;                                                                         \
        else                                                                                                     \
            *(head) = (n)->next;                                                                                 \
        if ((n)->next)                                                                                           \
            (n)->next->prev = (n)->prev;                                                                         \
        else                                                                                                     \
            *(tail) = (n)->prev;                                                                                 \
        (n)->prev = (n)->next = NULL;                                                                            \
    } while (0)

#endif
