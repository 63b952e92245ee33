//! `/echo`: every data message is sent back unchanged, same opcode.

use crate::handler::{Context, Handler, Message};

#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        cx.send(message);
    }
}
