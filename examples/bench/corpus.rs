//! The synthetic corpus: customers, chats and a year of messages, written
//! through `whatsapp_api::db` in one transaction.

use std::path::Path;
use std::time::Instant;
use whatsapp_api::rng::Rng;
use whatsapp_api::status::{DeliveryStatus, Direction, ReplyStatus};
use whatsapp_api::{clock, db};

/// Messages per chat: 100,000 messages over ~300 chats, and the number of
/// chats grows with the corpus (more history mostly means more customers).
const MESSAGES_PER_CHAT: usize = 330;

const FIRST: [&str; 60] = [
    "Maria", "José", "Ana", "Luis", "Carmen", "Juan", "Sofia", "Pedro", "Lucia", "Diego", "Elena",
    "Pablo", "Laura", "Carlos", "Marta", "Jorge", "Paula", "Miguel", "Sara", "David", "Emma",
    "Noah", "Olivia", "Liam", "Ava", "Lucas", "Mia", "Ethan", "Zoë", "Mateo", "Chloé", "Hugo",
    "Léa", "Louis", "Inès", "Jules", "Amir", "Fatima", "Omar", "Aisha", "Yusuf", "Leila", "Ahmed",
    "Nour", "Kenji", "Yuki", "Hiro", "Mei", "Wei", "Li", "Priya", "Arjun", "Anika", "Ravi", "Olga",
    "Ivan", "Nadia", "Pavel", "Greta", "Lars",
];
const LAST: [&str; 60] = [
    "Lopez",
    "Garcia",
    "Martinez",
    "Rodriguez",
    "Fernandez",
    "Gonzalez",
    "Sanchez",
    "Perez",
    "Gomez",
    "Diaz",
    "Moreno",
    "Muñoz",
    "Alvarez",
    "Romero",
    "Navarro",
    "Torres",
    "Ruiz",
    "Castro",
    "Ortega",
    "Delgado",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Evans",
    "Thomas",
    "Walker",
    "White",
    "Harris",
    "Martin",
    "Bernard",
    "Dubois",
    "Durand",
    "Lefèvre",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Khan",
    "Ali",
    "Hassan",
    "Tanaka",
    "Sato",
    "Suzuki",
    "Chen",
    "Wang",
    "Sharma",
    "Patel",
    "Ivanova",
    "Novak",
];
const PRODUCTS: [&str; 12] = [
    "blue jacket",
    "running shoes",
    "coffee grinder",
    "phone case",
    "desk lamp",
    "yoga mat",
    "backpack",
    "wireless earbuds",
    "water bottle",
    "wool scarf",
    "travel mug",
    "gift card",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct Chat {
    phone: String,
    first: &'static str,
    last: &'static str,
}

/// What the loader made, for the workloads.
pub struct Corpus {
    pub chats: usize,
    /// The busiest chat (the conversation page workload).
    pub busy_phone: String,
    /// A customer's full name, lower case: the two-word search.
    pub search: String,
    pub load_secs: f64,
    pub db_bytes: u64,
}

fn incoming_text(rng: &mut Rng, chat: &Chat) -> String {
    let order = 10_000 + rng.below(90_000);
    let product = rng.pick(&PRODUCTS);
    let name = format!("{} {}", chat.first, chat.last);
    match rng.below(20) {
        0 => format!("Hi, this is {name}. Where is my order #{order}?"),
        1 => format!("Hello! I ordered the {product} last week and it hasn't arrived yet"),
        2 => format!("Can I get a refund for order {order}? The {product} is broken 😞"),
        3 => "ok".to_string(),
        4 => format!("Is there a 20% discount on the {product}?"),
        5 => format!("Mi pedido {order} llegó dañado, ¿qué hago?"),
        6 => format!("Quelle est la date de livraison pour la commande {order} ?"),
        7 => format!("What are your opening hours on {}?", rng.pick(&DAYS)),
        8 => format!("my_username is {}_{order}", chat.first.to_lowercase()),
        9 => format!("{name} here — the {product} works great now, merci!"),
        10 => format!("THANK YOU SO MUCH!!! 🙏 The {product} is perfect"),
        11 => format!(
            "Do you ship to {}? Asking for a friend",
            rng.pick(&["Spain", "Mexico", "Canada", "Japan", "Kenya"])
        ),
        12 => "[Image]".to_string(),
        13 => format!("Please call me back, it's {name}, about order {order}"),
        14 => format!("Can I change the size of the {product}? Order {order}"),
        15 => "Thanks 👍".to_string(),
        16 => format!("Wo ist meine Bestellung {order}? Grüße, {}", chat.first),
        17 => format!("Is the {product} back in stock?"),
        18 => format!("I was charged twice for order {order}, please check"),
        _ => format!("Good morning! Any news about my {product}?"),
    }
}

fn outgoing_text(rng: &mut Rng, chat: &Chat) -> String {
    match rng.below(4) {
        0 => format!(
            "Hi {}, thanks for your message! We are looking into it.",
            chat.first
        ),
        1 => "Your order has shipped; the tracking link is on its way.".to_string(),
        2 => format!("Sorry about that, {}. A refund is on its way.", chat.first),
        _ => "We are open 9:00-18:00, Monday to Saturday.".to_string(),
    }
}

/// The status of the `i`th of `n` messages when it is incoming: about 7%
/// unread (mostly the newest thirtieth), 41% read, 38% replied, 14% ignored.
pub fn incoming_status(rng: &mut Rng, i: usize, n: usize) -> ReplyStatus {
    let recent = i + n / 30 >= n;
    match rng.below(100) {
        x if x < (if recent { 70 } else { 4 }) => ReplyStatus::Unread,
        x if x < 45 => ReplyStatus::Read,
        x if x < 85 => ReplyStatus::Replied,
        _ => ReplyStatus::Ignored,
    }
}

/// Writes `n` messages (80% incoming) over `n / MESSAGES_PER_CHAT` chats and
/// the last 365 days, newest last, in one transaction.
pub fn load_corpus(db_path: &Path, n: usize) -> Result<Corpus, String> {
    let started = Instant::now();
    let err = |e: db::DbError| format!("loading the corpus: {e}");
    let mut conn = db::connect(db_path).map_err(err)?;
    db::migrate(&conn).map_err(err)?;
    db::tune_for_bulk_load(&conn).map_err(err)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let chat_count = (n / MESSAGES_PER_CHAT).max(10);
    let chats: Vec<Chat> = (0..chat_count)
        .map(|i| Chat {
            phone: if i % 10 == 9 {
                format!("1203630{:011}@g.us", 25_000_000 + i)
            } else {
                format!("1555{:07}@s.whatsapp.net", 1_000_000 + i)
            },
            first: FIRST[i % FIRST.len()],
            last: LAST[(i / FIRST.len() + i) % LAST.len()],
        })
        .collect();
    let end = clock::now_secs() - 60;
    let span = 365 * 86_400;
    let start = end - span;
    let tx = conn.transaction().map_err(err)?;
    let mut created_at = start;
    for i in 0..n {
        // A tenth of the chats carry half the traffic; chat 0 is the busiest.
        let c = if rng.chance(50) {
            rng.below(chat_count.div_ceil(10))
        } else {
            rng.below(chat_count)
        };
        let chat = &chats[c];
        // Arrival order is time order; some messages share a second.
        if !rng.chance(5) {
            created_at = (start + (i as i64 * span) / n as i64).max(created_at);
        }
        let incoming = rng.chance(80);
        let text = if incoming {
            incoming_text(&mut rng, chat)
        } else {
            outgoing_text(&mut rng, chat)
        };
        let status = if incoming {
            incoming_status(&mut rng, i, n)
        } else {
            ReplyStatus::Sent
        };
        let id = format!("{:016x}-{:016x}", rng.next_u64(), i);
        let wa_id = format!("3EB0{:016X}", rng.next_u64());
        let push_name = format!("{} {}", chat.first, chat.last);
        let group = chat.phone.ends_with("@g.us");
        let sender = if group {
            format!("1555{:07}@s.whatsapp.net", 5_000_000 + rng.below(50))
        } else {
            chat.phone.clone()
        };
        db::insert_message_row(
            &tx,
            &db::NewMessage {
                id: &id,
                wa_id: Some(&wa_id),
                direction: if incoming {
                    Direction::Incoming
                } else {
                    Direction::Outgoing
                },
                phone: &chat.phone,
                sender_jid: if incoming { &sender } else { "" },
                push_name: incoming.then_some(push_name.as_str()),
                message: &text,
                reply_status: status,
                delivery_status: (!incoming).then_some(DeliveryStatus::Delivered),
                media_type: (text == "[Image]").then_some("image"),
                in_reply_to: None,
                created_at,
            },
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    db::optimize_search_index(&conn).map_err(err)?;
    drop(conn);
    let search_chat = &chats[chat_count / 2 + 1];
    Ok(Corpus {
        chats: chat_count,
        busy_phone: chats[0].phone.clone(),
        search: format!("{} {}", search_chat.first, search_chat.last).to_lowercase(),
        load_secs: started.elapsed().as_secs_f64(),
        db_bytes: dir_bytes(db_path.parent().unwrap_or(Path::new("."))),
    })
}

pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
